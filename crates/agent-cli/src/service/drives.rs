//! Mapped drives and the Windows service: a drive letter such as `Z:` mapped to a network share
//! belongs to one user's logon, so the service (LocalSystem) never sees it. Shares configured
//! that way are found here and the admin is told to use the UNC path instead.

use std::path::{Path, PathBuf};

/// Warnings for the shares a service would not see, one per share on such a drive.
///
/// `as_service`: whether the agent runs (or will run) as a service; a user's own agent sees its
/// mapped drives and gets no warning. `resolve` gives what a drive root such as `Z:\` stands for,
/// as the caller sees it (`None` when it does not exist): itself for a local disk, the UNC path
/// for a mapped network drive, another path for a `subst` drive. It is a parameter so the
/// logic is tested on any platform; [`resolve_root`] is the real one.
pub fn service_drive_warnings(
    shares: &[PathBuf],
    as_service: bool,
    resolve: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    if !as_service {
        return Vec::new();
    }
    let mut warnings = Vec::new();
    for share in shares {
        let Some((root, rest)) = drive_root(share) else {
            continue;
        };
        match resolve(&root) {
            None => warnings.push(format!(
                "{root} is a drive letter that is not visible to services (mapped drives belong to a user's logon); use its UNC path \\\\server\\share instead"
            )),
            Some(target) if same_drive(&target, &root) => {}
            Some(target) => {
                let target = target.trim_end_matches('\\');
                let suggested = if rest.is_empty() {
                    target.to_owned()
                } else {
                    format!("{target}\\{rest}")
                };
                warnings.push(format!(
                    "{root} maps to {target} for this user only, so the service does not see it (mapped drives belong to a user's logon); share {suggested} instead of {}",
                    share.display()
                ));
            }
        }
    }
    warnings
}

/// `Z:\` and the rest of the path (`Finance\2024`) when `path` starts with a drive letter.
fn drive_root(path: &Path) -> Option<(String, String)> {
    // Parsed as text so that the Windows rules apply on every platform (and in tests).
    let text = path.to_string_lossy();
    let mut chars = text.chars();
    let letter = chars.next().filter(char::is_ascii_alphabetic)?;
    if chars.next() != Some(':') {
        return None;
    }
    let rest = chars.as_str();
    if !(rest.is_empty() || rest.starts_with(['\\', '/'])) {
        return None;
    }
    let rest = rest.trim_matches(['\\', '/']).replace('/', "\\");
    Some((format!("{}:\\", letter.to_ascii_uppercase()), rest))
}

fn same_drive(resolved: &str, root: &str) -> bool {
    resolved.len() >= 2 && root.len() >= 2 && resolved[..2].eq_ignore_ascii_case(&root[..2])
}

/// What a drive root stands for, as this process sees it: resolving it gives `\\?\C:\` for a
/// local disk and `\\?\UNC\server\share\` for a mapped network drive.
pub fn resolve_root(root: &str) -> Option<String> {
    let resolved = std::fs::canonicalize(root).ok()?;
    Some(plain_path(&resolved.to_string_lossy()))
}

/// A verbatim path (`\\?\UNC\server\share`, `\\?\C:\x`) as people write it.
fn plain_path(verbatim: &str) -> String {
    if let Some(unc) = verbatim.strip_prefix(r"\\?\UNC\") {
        format!(r"\\{unc}")
    } else if let Some(local) = verbatim.strip_prefix(r"\\?\") {
        local.to_owned()
    } else {
        verbatim.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(paths: &[&str]) -> Vec<PathBuf> {
        paths.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn a_drive_the_service_cannot_see_gets_the_unc_advice() {
        let missing = |_: &str| None;
        let w = service_drive_warnings(&shares(&[r"Z:\Finance"]), true, missing);
        assert_eq!(
            w,
            [
                r"Z:\ is a drive letter that is not visible to services (mapped drives belong to a user's logon); use its UNC path \\server\share instead"
            ]
        );
    }

    #[test]
    fn a_mapped_drive_is_named_with_its_own_unc_path() {
        let mapped = |root: &str| match root {
            r"Z:\" => Some(r"\\fs01\data\".to_owned()),
            r"C:\" => Some(r"C:\".to_owned()),
            _ => None,
        };
        let w = service_drive_warnings(
            &shares(&[r"z:\Finance\2024", r"C:\Shares", "Z:"]),
            true,
            mapped,
        );
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with(r"Z:\ maps to \\fs01\data for this user only"),
            "{w:?}"
        );
        assert!(
            w[0].contains(r"share \\fs01\data\Finance\2024 instead of z:\Finance\2024"),
            "{w:?}"
        );
        assert!(w[1].contains(r"share \\fs01\data instead of Z:"), "{w:?}");
    }

    #[test]
    fn local_disks_unc_paths_and_a_users_own_agent_get_no_warning() {
        let local = |root: &str| Some(root.to_owned());
        assert!(service_drive_warnings(&shares(&[r"D:\Data", "D:/x"]), true, local).is_empty());
        let missing = |_: &str| None;
        assert!(service_drive_warnings(
            &shares(&[r"\\fs01\data", "/srv/share", "Z:relative"]),
            true,
            missing
        )
        .is_empty());
        assert!(service_drive_warnings(&shares(&[r"Z:\x"]), false, missing).is_empty());
    }

    #[test]
    fn verbatim_paths_become_plain() {
        assert_eq!(plain_path(r"\\?\UNC\fs01\data\"), r"\\fs01\data\");
        assert_eq!(plain_path(r"\\?\C:\"), r"C:\");
        assert_eq!(plain_path("/srv"), "/srv");
    }
}
