//! The folder a copy is written into, opened beneath its job's destination root: reached from
//! the root with no `..` and no symbolic link on the way (`openat2` with `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS` on Linux), and then named through that open folder
//! (`/proc/self/fd/N/NAME`), so neither a name from an agent nor a link in the destination can
//! lead a write outside it, whatever the string checks before missed.

use std::path::{Path, PathBuf};

use super::local;
use crate::failure::CopyError;
use crate::raw_path::RawPath;

/// An open folder inside a job's destination.
pub struct Landing {
    /// Keeps the folder open (and so its `/proc/self/fd` name valid) while the copy runs.
    #[cfg(target_os = "linux")]
    _dir: std::os::fd::OwnedFd,
    /// How the copy names the folder: through the open descriptor where possible.
    path: PathBuf,
}

impl Landing {
    /// Opens the folder that will hold `dest` (or `dest` itself, for a folder ending in `/`),
    /// making the missing folders on the way, beneath whichever of `roots` holds it.
    pub fn open(roots: &[RawPath], dest: &RawPath) -> Result<Self, CopyError> {
        let outside =
            || CopyError::Outside(format!("{} is outside the job's destination", dest.lossy()));
        let (root, rel) = roots
            .iter()
            .find_map(|r| Some((r, relative(r, dest)?)))
            .ok_or_else(outside)?;
        let folder = match rel.iter().rposition(|&b| b == b'/') {
            Some(i) => &rel[..i],
            None => &[][..],
        };
        if folder.split(|&b| b == b'/').any(|c| c == b"..") {
            return Err(outside());
        }
        let root_path = root.to_path();
        std::fs::create_dir_all(&root_path).map_err(|e| local(e, "create folder", &root_path))?;
        Self::beneath(&root_path, folder).map_err(|e| {
            if e.raw_os_error() == Some(libc::EXDEV) || e.raw_os_error() == Some(libc::ELOOP) {
                CopyError::Outside(format!(
                    "{} leads outside the job's destination (a symbolic link or '..' on the way)",
                    dest.lossy()
                ))
            } else {
                local(e, "create folder", &root_path.join(os(folder)))
            }
        })
    }

    #[cfg(target_os = "linux")]
    fn beneath(root_path: &Path, folder: &[u8]) -> std::io::Result<Self> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
        let root = rustix::fs::open(root_path, flags, Mode::empty())?;
        let open = |at: &std::os::fd::OwnedFd, rel: &[u8]| {
            match rustix::fs::openat2(at, rel, flags, Mode::empty(), resolve) {
                // A kernel before 5.6: one checked component at a time, links refused.
                Err(rustix::io::Errno::NOSYS) => {
                    rustix::fs::openat(at, rel, flags | OFlags::NOFOLLOW, Mode::empty())
                        .map_err(std::io::Error::from)
                }
                r => r.map_err(std::io::Error::from),
            }
        };
        let rel = folder.strip_prefix(b"/").unwrap_or(folder);
        let dir = if rel.is_empty() {
            root
        } else {
            // Most folders exist already: one call for the whole way down.
            let whole = if nosys() { None } else { open(&root, rel).ok() };
            match whole {
                Some(dir) => dir,
                None => {
                    let mut dir = root;
                    for part in rel.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
                        match rustix::fs::mkdirat(&dir, part, Mode::from(0o777)) {
                            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                            Err(e) => return Err(e.into()),
                        }
                        dir = open(&dir, part)?;
                    }
                    dir
                }
            }
        };
        let path = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&dir)
        ));
        // Without /proc (a chroot), the path the open just walked safely.
        let path = if path.is_dir() {
            path
        } else {
            root_path.join(os(rel))
        };
        Ok(Self { _dir: dir, path })
    }

    #[cfg(not(target_os = "linux"))]
    fn beneath(root: &Path, folder: &[u8]) -> std::io::Result<Self> {
        let path = root.join(os(folder.strip_prefix(b"/").unwrap_or(folder)));
        std::fs::create_dir_all(&path)?;
        Ok(Self { path })
    }

    /// The folder, as the copy names it.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// `name` in the folder.
    pub fn join(&self, name: &[u8]) -> PathBuf {
        self.path.join(os(name))
    }
}

/// Whether this kernel lacks `openat2` (checked once).
#[cfg(target_os = "linux")]
fn nosys() -> bool {
    static NOSYS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *NOSYS.get_or_init(|| {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        rustix::fs::openat2(
            rustix::fs::CWD,
            "/",
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::empty(),
        )
        .err()
            == Some(rustix::io::Errno::NOSYS)
    })
}

/// `dest` relative to `root` (starting with `/`), if `dest` is inside it.
fn relative<'a>(root: &RawPath, dest: &'a RawPath) -> Option<&'a [u8]> {
    let root = root.0.strip_suffix(b"/").unwrap_or(&root.0);
    let rest = dest.0.strip_prefix(root)?;
    (rest.first() == Some(&b'/') && rest.len() > 1).then_some(rest)
}

fn os(bytes: &[u8]) -> PathBuf {
    RawPath(bytes.to_vec()).to_path()
}

/// The real path behind a `/proc/self/fd/N/...` path, for messages: a report names the folder
/// a user knows, not the descriptor it was reached through.
pub fn shown(path: &Path) -> PathBuf {
    let mut parts = path.components();
    let fd: PathBuf = parts.by_ref().take(5).collect();
    if !fd.starts_with("/proc/self/fd") || fd.components().count() != 5 {
        return path.to_path_buf();
    }
    match std::fs::read_link(&fd) {
        Ok(real) => real.join(parts.as_path()),
        Err(_) => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn raw(p: &Path) -> RawPath {
        RawPath::new(p.to_str().unwrap())
    }

    #[test]
    fn writes_land_beneath_the_root_only() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("dest");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let roots = [raw(&root)];
        // Folders are made on the way, and the file is named through the open folder.
        let l = Landing::open(&roots, &raw(&root.join("a/b/file"))).unwrap();
        std::fs::write(l.join(b"file"), "x").unwrap();
        assert_eq!(std::fs::read(root.join("a/b/file")).unwrap(), b"x");
        assert_eq!(shown(&l.join(b"file")), root.join("a/b/file"));
        // A link inside the destination that points out is not followed.
        std::os::unix::fs::symlink(&outside, root.join("a/link")).unwrap();
        let e = Landing::open(&roots, &raw(&root.join("a/link/file")))
            .err()
            .unwrap();
        assert!(matches!(e, CopyError::Outside(r) if r.contains("leads outside")));
        // Neither is `..`, nor a path beside the root that shares its prefix.
        let climb = RawPath(format!("{}/a/../../outside/f", root.display()).into_bytes());
        assert!(Landing::open(&roots, &climb).is_err());
        assert!(Landing::open(&roots, &raw(&tmp.path().join("dest2/f"))).is_err());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }

    #[test]
    fn a_folder_swapped_for_a_link_after_it_was_opened_still_receives_the_write() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("dest");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let l = Landing::open(&[raw(&root)], &raw(&root.join("a/file"))).unwrap();
        // Swapped between the open and the write: the write goes where the open went.
        std::fs::rename(root.join("a"), root.join("moved")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("a")).unwrap();
        std::fs::write(l.join(b"file"), "x").unwrap();
        assert!(root.join("moved/file").is_file());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
    }
}
