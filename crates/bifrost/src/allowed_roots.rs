//! Allowed destination roots: the folders of Bifrost's machine that folder destinations must be
//! inside (an admin setting; none set: any folder, as before it existed). The setting is checked
//! when it is set, and every folder a new run would write in is checked against it by path
//! components after symlinks are resolved, so neither `/data2` nor a symlink inside `/data` that
//! points at `/etc` passes for inside `/data`.

use std::io;
use std::path::{Component, Path, PathBuf};

use mover_proto::api::{Destination, Mapping};
use mover_proto::settings::{MAX_ALLOWED_ROOTS, MAX_ROOT_BYTES};

use crate::layout::dest_root;
use crate::store::{Store, StoreError};

/// How many roots a refusal names (the rest are counted): 64 roots of 4 KiB each would make an
/// error message of 256 KiB.
const NAMED: usize = 8;

/// Why roots cannot be set, or a folder may not be written in; the text says what to do.
#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    /// The roots given cannot be the setting (not absolute, `..`, too many, too long).
    #[error("{0}")]
    Invalid(String),
    /// A folder is outside every allowed root, or where it leads cannot be told.
    #[error("{0}")]
    Forbidden(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// `given` as the setting: each root absolute, without `..` or NUL, at most [`MAX_ROOT_BYTES`]
/// long, normalized (`/srv/x/` is `/srv/x`), duplicates dropped, order kept; at most
/// [`MAX_ALLOWED_ROOTS`]. Nothing on disk is read: a root may be a volume not mounted yet.
pub fn validate(given: Vec<String>) -> Result<Vec<String>, RootsError> {
    if given.len() > MAX_ALLOWED_ROOTS {
        return Err(RootsError::Invalid(format!(
            "{} allowed destination roots were given; at most {MAX_ALLOWED_ROOTS} may be set",
            given.len()
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(given.len());
    for root in given {
        if root.len() > MAX_ROOT_BYTES {
            // Not echoed: it is long, and may be anything.
            return Err(RootsError::Invalid(format!(
                "an allowed destination root is {} bytes long; at most {MAX_ROOT_BYTES}",
                root.len()
            )));
        }
        let root = dest_root(&root, "allowed destination root")
            .map_err(|e| RootsError::Invalid(e.to_string()))?;
        if !out.contains(&root) {
            out.push(root);
        }
    }
    Ok(out)
}

/// Checks `given` and stores it as the allowed roots (empty: none, any folder); the setting
/// as stored.
pub async fn set(store: &Store, given: Vec<String>) -> Result<Vec<String>, RootsError> {
    let roots = validate(given)?;
    store.set_allowed_roots(roots.clone()).await?;
    tracing::info!(roots = ?roots, "allowed destination roots set");
    Ok(roots)
}

/// The folders of this machine a job writes in, each with what the request calls it: a folder
/// destination and each mapping's. A stored (cloud) destination has none.
pub fn folders(destination: &Destination, mappings: &[Mapping]) -> Vec<(&'static str, String)> {
    let Destination::Folder { path } = destination else {
        return Vec::new();
    };
    std::iter::once(("destination", path.clone()))
        .chain(
            mappings
                .iter()
                .map(|m| ("mapping destination", m.destination.clone())),
        )
        .collect()
}

/// Refuses unless each of `folders` is inside an allowed root (none set: all are). Reads the
/// setting each time, so `bifrost settings` reaches a running Bifrost at once.
pub async fn check(store: &Store, folders: Vec<(&'static str, String)>) -> Result<(), RootsError> {
    if folders.is_empty() {
        return Ok(());
    }
    let roots = store.allowed_roots().await?;
    if roots.is_empty() {
        return Ok(());
    }
    // Resolving walks the file system, which may be a slow network mount.
    tokio::task::spawn_blocking(move || check_now(&folders, &roots))
        .await
        .unwrap_or_else(|e| {
            Err(RootsError::Forbidden(format!(
                "the check against the allowed destination roots failed: {e}"
            )))
        })
}

/// [`check`] against `roots` (not empty), on the calling thread.
pub fn check_now(folders: &[(&'static str, String)], roots: &[String]) -> Result<(), RootsError> {
    // A root that cannot be resolved (no permission to look) allows nothing.
    let resolved: Vec<PathBuf> = roots
        .iter()
        .filter_map(|r| match resolve(Path::new(r)) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(root = %r, error = %e, "an allowed destination root cannot be resolved");
                None
            }
        })
        .collect();
    for (what, folder) in folders {
        let outside = |how: String| {
            RootsError::Forbidden(format!(
                "{what} {folder}{how} the allowed destination roots ({}); an admin sets them in Settings",
                named(roots)
            ))
        };
        let real = dest_root(folder, what)
            .map_err(|e| e.to_string())
            .and_then(|f| resolve(Path::new(&f)).map_err(|e| e.to_string()))
            .map_err(|e| outside(format!(" cannot be checked ({e}) against")))?;
        if !resolved.iter().any(|root| real.starts_with(root)) {
            let via = if real == Path::new(folder) {
                String::new()
            } else {
                format!(" (which resolves to {})", real.display())
            };
            return Err(outside(format!("{via} is outside")));
        }
    }
    Ok(())
}

/// `path` (absolute, no `..`) with its deepest existing ancestor canonicalized (symlinks
/// resolved) and the components below it, which do not exist yet, appended. Existence is
/// told by `lstat`, so a dangling symlink counts as existing and fails to resolve, rather than
/// being taken for a folder to be made (`mkdir` through it would land where it points).
pub fn resolve(path: &Path) -> io::Result<PathBuf> {
    let parts: Vec<Component> = path.components().collect();
    let climbs = parts.iter().any(|c| matches!(c, Component::ParentDir));
    if !path.is_absolute() || climbs {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not an absolute path without '..'",
        ));
    }
    let mut n = parts.len();
    loop {
        let candidate: PathBuf = parts[..n].iter().collect();
        match std::fs::symlink_metadata(&candidate) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound && n > 1 => n -= 1,
            Err(e) => return Err(e),
        }
    }
    let mut real = std::fs::canonicalize(parts[..n].iter().collect::<PathBuf>())?;
    real.extend(&parts[n..]);
    Ok(real)
}

/// The roots for a message: the first [`NAMED`], then how many more.
fn named(roots: &[String]) -> String {
    let mut out = roots[..roots.len().min(NAMED)].join(", ");
    if roots.len() > NAMED {
        out.push_str(&format!(" and {} more", roots.len() - NAMED));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::symlink;

    use super::*;

    /// A temp folder and its canonical path (the messages name folders as resolved).
    fn base() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = std::fs::canonicalize(dir.path()).unwrap();
        (dir, path)
    }

    fn s(p: &Path) -> String {
        p.to_str().unwrap().to_owned()
    }

    /// `folder` checked as a destination against `roots`; the refusal's text.
    fn refusal(folder: &Path, roots: &[&Path]) -> Option<String> {
        let roots: Vec<String> = roots.iter().map(|r| s(r)).collect();
        check_now(&[("destination", s(folder))], &roots)
            .err()
            .map(|e| e.to_string())
    }

    #[test]
    fn roots_are_normalized_deduplicated_and_bounded() {
        let given = vec![
            "/srv/a/".into(),
            "/srv//a".into(),
            "/srv/./b".into(),
            "/".into(),
        ];
        assert_eq!(validate(given).unwrap(), ["/srv/a", "/srv/b", "/"]);
        assert!(validate(Vec::new()).unwrap().is_empty());
        let bad = |given: Vec<String>| match validate(given) {
            Err(RootsError::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(bad(vec!["srv".into()]).contains("not an absolute path"));
        assert!(bad(vec![String::new()]).contains("not an absolute path"));
        assert!(bad(vec!["/srv/../etc".into()]).contains("'..'"));
        assert!(bad(vec!["/srv\0".into()]).contains("NUL"));
        let long = format!("/{}", "x".repeat(MAX_ROOT_BYTES));
        let m = bad(vec![long]);
        assert!(m.contains("4097 bytes") && !m.contains("xxxx"), "{m}");
        let many = |n: usize| (0..n).map(|i| format!("/srv/{i}")).collect::<Vec<_>>();
        assert_eq!(validate(many(MAX_ALLOWED_ROOTS)).unwrap().len(), 64);
        assert!(bad(many(MAX_ALLOWED_ROOTS + 1)).contains("at most 64"));
    }

    #[test]
    fn inside_is_by_components_not_by_string_prefix() {
        let (_dir, dir) = base();
        let data = dir.join("data");
        std::fs::create_dir(&data).unwrap();
        assert_eq!(refusal(&data, &[&data]), None, "the root itself");
        assert_eq!(refusal(&data.join("x"), &[&data]), None);
        assert_eq!(
            refusal(Path::new(&format!("{}/x/", s(&data))), &[&data]),
            None
        );
        let m = refusal(&dir.join("data2/x"), &[&data]).unwrap();
        assert_eq!(
            m,
            format!(
                "destination {}/data2/x is outside the allowed destination roots ({}); an admin sets them in Settings",
                s(&dir),
                s(&data)
            )
        );
        assert!(refusal(&dir, &[&data]).is_some(), "a root's parent");
        assert!(refusal(Path::new("/etc/x"), &[&data]).is_some());
        // A root written with a trailing slash is the same root.
        let slashed = PathBuf::from(format!("{}/", s(&data)));
        assert_eq!(refusal(&data.join("x"), &[&slashed]), None);
        // Any one root will do.
        let other = dir.join("other");
        assert_eq!(refusal(&other.join("y"), &[&data, &other]), None);
    }

    #[test]
    fn folders_not_made_yet_are_judged_by_where_they_would_be() {
        let (_dir, dir) = base();
        let data = dir.join("data");
        std::fs::create_dir(&data).unwrap();
        assert_eq!(refusal(&data.join("a/b/c/d"), &[&data]), None);
        assert!(refusal(&dir.join("elsewhere/a/b"), &[&data]).is_some());
        // A root that does not exist yet (a volume to be mounted) is compared as written.
        let later = dir.join("later");
        assert_eq!(refusal(&later.join("x/y"), &[&later]), None);
        assert!(refusal(&dir.join("later2"), &[&later]).is_some());
        assert_eq!(
            resolve(&data.join("a/b")).unwrap(),
            std::fs::canonicalize(&data).unwrap().join("a/b")
        );
    }

    #[test]
    fn a_symlink_inside_a_root_cannot_lead_out() {
        let (_dir, dir) = base();
        let (data, outside) = (dir.join("data"), dir.join("outside"));
        std::fs::create_dir_all(data.join("real")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        symlink(&outside, data.join("link")).unwrap();
        let m = refusal(&data.join("link/x"), &[&data]).unwrap();
        let real = std::fs::canonicalize(&outside).unwrap().join("x");
        assert!(
            m.contains(&format!("(which resolves to {})", real.display())),
            "{m}"
        );
        assert!(refusal(&data.join("link"), &[&data]).is_some());
        // A link that stays inside is inside.
        symlink(data.join("real"), data.join("inner")).unwrap();
        assert_eq!(refusal(&data.join("inner/x"), &[&data]), None);
        // A dangling link is not a folder to make: `mkdir` through it would land outside.
        symlink(outside.join("missing"), data.join("dangling")).unwrap();
        let m = refusal(&data.join("dangling/x"), &[&data]).unwrap();
        assert!(m.contains("cannot be checked"), "{m}");
        // A file where a folder would have to be cannot be told inside either.
        std::fs::write(data.join("file"), "x").unwrap();
        assert!(refusal(&data.join("file/x"), &[&data]).is_some());
    }

    #[test]
    fn roots_are_resolved_too() {
        let (_dir, dir) = base();
        let data = dir.join("data");
        std::fs::create_dir(&data).unwrap();
        let alias = dir.join("alias");
        symlink(&data, &alias).unwrap();
        assert_eq!(refusal(&data.join("x"), &[&alias]), None);
        assert_eq!(refusal(&alias.join("x"), &[&alias]), None);
        assert!(refusal(&dir.join("x"), &[&alias]).is_some());
    }

    #[test]
    fn climbing_and_relative_folders_are_refused_and_no_roots_allow_all() {
        let (_dir, dir) = base();
        let data = dir.join("data");
        std::fs::create_dir(&data).unwrap();
        // `..` below a folder that does not exist would fool a comparison of what is written.
        let climb = PathBuf::from(format!("{}/nothere/../../../etc", s(&data)));
        assert!(refusal(&climb, &[&data]).is_some());
        assert!(resolve(&climb).is_err());
        assert!(refusal(Path::new("data/x"), &[&data]).is_some());
        assert!(
            check_now(&[("destination", "/etc".into())], &[]).is_err(),
            "check_now is for set roots"
        );
    }

    #[test]
    fn a_refusal_names_a_few_roots_and_counts_the_rest() {
        let roots: Vec<String> = (0..20).map(|i| format!("/nowhere/r{i}")).collect();
        let m = check_now(&[("mapping destination", "/etc/x".into())], &roots)
            .unwrap_err()
            .to_string();
        assert!(m.starts_with("mapping destination /etc/x is outside the allowed destination roots (/nowhere/r0, "), "{m}");
        assert!(
            m.contains("/nowhere/r7 and 12 more)") && !m.contains("r8,"),
            "{m}"
        );
    }

    #[test]
    fn only_folder_destinations_have_folders() {
        let mappings = vec![Mapping {
            source: "/home/a".into(),
            destination: "/srv/a".into(),
        }];
        let folder = Destination::Folder {
            path: "/srv".into(),
        };
        assert_eq!(
            folders(&folder, &mappings),
            [
                ("destination", "/srv".to_owned()),
                ("mapping destination", "/srv/a".to_owned())
            ]
        );
        let stored = Destination::Stored {
            id: "d1".into(),
            path: "x".into(),
        };
        assert!(folders(&stored, &[]).is_empty());
    }

    #[tokio::test]
    async fn the_setting_is_read_at_each_check() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("bifrost.db")).unwrap();
        let etc = || vec![("destination", "/etc/x".to_owned())];
        check(&store, etc()).await.unwrap();
        assert_eq!(
            set(&store, vec![format!("{}/", s(dir.path()))])
                .await
                .unwrap(),
            [s(dir.path())]
        );
        assert!(matches!(
            check(&store, etc()).await,
            Err(RootsError::Forbidden(_))
        ));
        check(&store, vec![("destination", s(&dir.path().join("in")))])
            .await
            .unwrap();
        assert!(matches!(
            set(&store, vec!["rel".into()]).await,
            Err(RootsError::Invalid(_))
        ));
        assert_eq!(
            store.allowed_roots().await.unwrap(),
            [s(dir.path())],
            "a refused set changes nothing"
        );
        set(&store, Vec::new()).await.unwrap();
        check(&store, etc()).await.unwrap();
    }
}
