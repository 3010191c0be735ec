//! Where a job's files land: destination roots normalized and checked, the name each source
//! lands under, and which names may land at all. Nothing here trusts the agent.

use mover_proto::api::{Destination, Mapping};

use crate::raw_path::RawPath;

/// Why a destination or source cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// Not an absolute path.
    #[error("{0} {1:?} is not an absolute path")]
    Relative(&'static str, String),
    /// Has a `..` component: it could climb out of where it seems to be.
    #[error("{0} {1:?} contains '..'")]
    DotDot(&'static str, String),
    /// Has a NUL byte.
    #[error("{0} contains a NUL byte")]
    Nul(&'static str),
    /// A source whose last component cannot be a name at the destination.
    #[error("source {0:?} has no name it can be copied under (empty, '.', '..' or too long); choose a folder inside it")]
    NoName(String),
}

/// `path` as a destination root: absolute, no `..`, no NUL; `.`, repeated and trailing `/`
/// removed, so two spellings of one folder compare equal.
pub fn dest_root(path: &str, what: &'static str) -> Result<String, LayoutError> {
    if path.contains('\0') {
        return Err(LayoutError::Nul(what));
    }
    if !path.starts_with('/') {
        return Err(LayoutError::Relative(what, path.to_owned()));
    }
    let mut out = String::with_capacity(path.len());
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(LayoutError::DotDot(what, path.to_owned())),
            part => {
                out.push('/');
                out.push_str(part);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// The root a job's destination names, as an absolute path: a folder's own path, or for a
/// stored destination its path inside, under a virtual `/` (the destination maps it to keys).
pub fn root_of(destination: &Destination) -> Result<String, LayoutError> {
    match destination {
        Destination::Folder { path } => dest_root(path, "destination"),
        Destination::Stored { path, .. } => dest_root(&format!("/{path}"), "destination path"),
    }
}

/// The name a source lands under: its last component, split the way its agent's platform
/// splits paths, and a safe name there.
pub fn source_name(source: &str) -> Result<RawPath, LayoutError> {
    let path = RawPath::new(source);
    let name = path.base_name();
    if name.is_safe_name(&path) {
        Ok(name)
    } else {
        Err(LayoutError::NoName(source.to_owned()))
    }
}

/// One source and the destination path it becomes.
#[derive(Debug, Clone)]
pub struct Target {
    /// Path on the agent.
    pub source: RawPath,
    /// Absolute path at the destination: the copied file, or the folder receiving the contents.
    pub dest: RawPath,
}

/// Each source lands as `destination/NAME`; with mappings, each mapped folder's contents land
/// in its own destination folder. The job was checked when it was created, so a source or
/// root that fails the checks here (a database edited by hand) is left out, never written.
pub fn targets(sources: &[String], destination: &Destination, mappings: &[Mapping]) -> Vec<Target> {
    if !mappings.is_empty() {
        return mappings
            .iter()
            .filter_map(|m| {
                Some(Target {
                    source: RawPath::new(&m.source),
                    dest: RawPath::new(&dest_root(&m.destination, "mapping destination").ok()?),
                })
            })
            .collect();
    }
    let Ok(root) = root_of(destination) else {
        return Vec::new();
    };
    let root = RawPath::new(&root);
    sources
        .iter()
        .filter_map(|s| {
            let name = source_name(s).ok()?;
            Some(Target {
                source: RawPath::new(s),
                dest: root.child(&name),
            })
        })
        .collect()
}

/// The folders a job may write in: its destination, or each mapping's.
pub fn roots(destination: &Destination, mappings: &[Mapping]) -> Vec<RawPath> {
    if mappings.is_empty() {
        return root_of(destination)
            .map(|r| vec![RawPath::new(&r)])
            .unwrap_or_default();
    }
    mappings
        .iter()
        .filter_map(|m| dest_root(&m.destination, "mapping destination").ok())
        .map(|r| RawPath::new(&r))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn destination_roots_are_normalized_and_never_climb() {
        assert_eq!(dest_root("/d//x/./y/", "destination").unwrap(), "/d/x/y");
        assert_eq!(dest_root("/", "destination").unwrap(), "/");
        assert_eq!(
            dest_root("/d/../etc", "mapping destination"),
            Err(LayoutError::DotDot(
                "mapping destination",
                "/d/../etc".into()
            ))
        );
        assert!(matches!(
            dest_root("d", "destination"),
            Err(LayoutError::Relative(..))
        ));
        assert!(matches!(
            dest_root("/d\0", "destination"),
            Err(LayoutError::Nul(_))
        ));
    }

    #[test]
    fn sources_land_as_their_own_folder_whatever_their_name() {
        let d = Destination::Folder {
            path: "/dest/inner/".into(),
        };
        let t = targets(
            &[
                "/srv/share/Finance".into(),
                r"/s/x\..".into(),
                r"/s/y\.".into(),
            ],
            &d,
            &[],
        );
        let dests: Vec<_> = t.iter().map(|t| t.dest.clone()).collect();
        assert_eq!(
            dests,
            [
                RawPath::new("/dest/inner/Finance"),
                RawPath::new(r"/dest/inner/x\.."),
                RawPath::new(r"/dest/inner/y\.")
            ]
        );
        assert!(source_name(r"C:\s\x\..").is_err());
        assert!(source_name("/").is_err());
        let m = vec![Mapping {
            source: "/home/alice".into(),
            destination: "/users/a.smith".into(),
        }];
        let t = targets(&[], &d, &m);
        assert_eq!(
            (t[0].source.clone(), t[0].dest.clone()),
            (RawPath::new("/home/alice"), RawPath::new("/users/a.smith"))
        );
    }
}
