//! The files of an update beside the installed binary, and the file-system steps that move
//! them, each one crash-safe: a release waits as `.NAME.next`, the installed binary is kept as
//! `.NAME.previous`, and the new one replaces the old in a single rename(2).
//!
//! ```text
//! install/agent                  the installed binary (what a service or a launch runs)
//! install/.agent.next            a verified release on trial, run from here until it is healthy
//! install/.agent.previous        the binary an update replaced (a hard link, or a copy)
//! install/.agent.update-trial    the trial's state (see `trial.rs`)
//! install/.agent.update-lock     held (shared) by every process taking part in a trial
//! install/.agent.rolled-back     versions that failed a trial here, never installed again
//! ```

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Where an installed binary's update files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    install: PathBuf,
}

impl Paths {
    /// The update files of the binary installed at `install`.
    pub fn of(install: &Path) -> Self {
        Self {
            install: install.to_owned(),
        }
    }

    /// For a running executable: the installed binary it belongs to, and whether it is a
    /// release on trial (started from `.NAME.next`).
    pub fn for_exe(exe: &Path) -> (Self, bool) {
        let name = exe
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stem = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(std::env::consts::EXE_SUFFIX))
            .and_then(|n| n.strip_suffix(".next"));
        match stem {
            Some(stem) if !stem.is_empty() => (
                Self::of(&exe.with_file_name(format!("{stem}{}", std::env::consts::EXE_SUFFIX))),
                true,
            ),
            _ => (Self::of(exe), false),
        }
    }

    /// The installed binary.
    pub fn install(&self) -> &Path {
        &self.install
    }

    fn name(&self) -> String {
        self.install
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn beside(&self, suffix: &str) -> PathBuf {
        self.install
            .with_file_name(format!(".{}.{suffix}", self.name()))
    }

    /// The release on trial.
    pub fn next(&self) -> PathBuf {
        let stem = self.name();
        let stem = stem
            .strip_suffix(std::env::consts::EXE_SUFFIX)
            .unwrap_or(&stem);
        // The executable suffix stays last, so Windows still runs it.
        self.install
            .with_file_name(format!(".{stem}.next{}", std::env::consts::EXE_SUFFIX))
    }

    /// The binary an update replaced.
    pub fn previous(&self) -> PathBuf {
        self.beside("previous")
    }

    /// The trial's state file.
    pub fn trial(&self) -> PathBuf {
        self.beside("update-trial")
    }

    /// The lock every party to a trial holds.
    pub fn lock(&self) -> PathBuf {
        self.beside("update-lock")
    }

    /// Versions rolled back here.
    pub fn rolled_back(&self) -> PathBuf {
        self.beside("rolled-back")
    }

    /// The folder holding all of these (one filesystem, so renames are atomic).
    pub fn dir(&self) -> io::Result<&Path> {
        self.install
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .ok_or_else(|| io::Error::other("the install path has no parent folder"))
    }
}

/// Makes the folder's entries durable: a rename is only safe across a power cut once the
/// folder itself is synced. (Windows has no folder handle to sync; NTFS journals renames.)
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// BLAKE3 of a file, hex: how a trial tells the new binary from the old at the install path.
pub fn hash_file(path: &Path) -> io::Result<String> {
    let mut hasher = blake3::Hasher::new();
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// Writes `bytes` to `path` atomically: a synced temporary file renamed over it, then the
/// folder synced. A crash leaves the old content or the new, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("no parent folder"))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".mover-tmp-")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Step 1: puts the verified binary `new_bin` (in a staging folder in the same folder) at
/// `.NAME.next`, executable and synced.
pub fn stage_next(paths: &Paths, new_bin: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(new_bin, std::fs::Permissions::from_mode(0o755))?;
    }
    File::open(new_bin)?.sync_all()?;
    replace_file(new_bin, &paths.next())?;
    sync_dir(paths.dir()?)
}

/// Step 2: keeps the installed binary as `.NAME.previous`: a hard link when the filesystem
/// allows (the same inode, nothing to copy), else a synced copy; made under a temporary name
/// and renamed, so `.previous` is always whole.
pub fn keep_previous(paths: &Paths) -> io::Result<()> {
    let dir = paths.dir()?;
    let tmp = paths.previous().with_extension("previous-tmp");
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(paths.install(), &tmp).is_err() {
        std::fs::copy(paths.install(), &tmp)?;
        File::open(&tmp)?.sync_all()?;
    }
    replace_file(&tmp, &paths.previous())?;
    sync_dir(dir)
}

/// The swap: `.NAME.next` becomes the installed binary in one rename. Done already (the new
/// binary is installed and `.next` is gone) counts as done.
pub fn promote(paths: &Paths, new_hash: &str) -> io::Result<()> {
    match replace_file(&paths.next(), paths.install()) {
        Ok(()) => sync_dir(paths.dir()?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if hash_file(paths.install())? == new_hash {
                Ok(())
            } else {
                Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} is missing", paths.next().display()),
                ))
            }
        }
        Err(e) => Err(e),
    }
}

/// Puts `.NAME.previous` back at the install path in one rename, keeping `.previous` (a new
/// hard link is renamed, not `.previous` itself).
pub fn restore_previous(paths: &Paths) -> io::Result<()> {
    let tmp = paths.previous().with_extension("restore-tmp");
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(paths.previous(), &tmp).is_err() {
        std::fs::copy(paths.previous(), &tmp)?;
        File::open(&tmp)?.sync_all()?;
    }
    replace_file(&tmp, paths.install())?;
    sync_dir(paths.dir()?)
}

/// Removes a file that may not exist.
pub fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Renames `from` over `to`. On Unix (and on Windows where the running image allows it) this
/// is one atomic rename. Windows refuses to replace an executable that is running: the old one
/// is then moved aside first, and `.previous` (kept before any swap) covers the instant
/// between the two renames.
fn replace_file(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if cfg!(windows) && e.kind() == io::ErrorKind::PermissionDenied && to.exists() => {
            let aside = to.with_extension("replaced");
            let _ = std::fs::remove_file(&aside);
            std::fs::rename(to, &aside)?;
            std::fs::rename(from, to)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_beside_the_binary() {
        let p = Paths::of(Path::new("/opt/m/agent"));
        assert_eq!(p.previous(), Path::new("/opt/m/.agent.previous"));
        assert_eq!(p.trial(), Path::new("/opt/m/.agent.update-trial"));
        if cfg!(unix) {
            assert_eq!(p.next(), Path::new("/opt/m/.agent.next"));
        }
        assert_eq!(Paths::for_exe(&p.next()), (p.clone(), true));
        assert_eq!(Paths::for_exe(p.install()), (p, false));
    }

    #[test]
    fn previous_is_kept_and_the_swap_is_one_rename() {
        let dir = tempfile::tempdir().unwrap();
        let p = Paths::of(&dir.path().join("agent"));
        std::fs::write(p.install(), b"old").unwrap();
        let staged = dir.path().join("new");
        std::fs::write(&staged, b"new").unwrap();
        stage_next(&p, &staged).unwrap();
        keep_previous(&p).unwrap();
        assert_eq!(std::fs::read(p.install()).unwrap(), b"old");
        let new_hash = hash_file(&p.next()).unwrap();
        promote(&p, &new_hash).unwrap();
        promote(&p, &new_hash).unwrap();
        assert_eq!(std::fs::read(p.install()).unwrap(), b"new");
        assert_eq!(std::fs::read(p.previous()).unwrap(), b"old");
        restore_previous(&p).unwrap();
        assert_eq!(std::fs::read(p.install()).unwrap(), b"old");
        assert_eq!(std::fs::read(p.previous()).unwrap(), b"old");
    }
}
