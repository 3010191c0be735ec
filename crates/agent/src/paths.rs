//! Path rules: which paths Bifrost may touch, checked before any file is opened.

use std::path::{Component, Path, PathBuf};

use mover_proto::MAX_PATH_BYTES;

/// Why a path is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not an absolute path.
    #[error("path {0:?} is not absolute")]
    Relative(String),
    /// Contains a `..` component.
    #[error("path {0:?} contains '..'")]
    DotDot(String),
    /// Contains a NUL byte.
    #[error("path contains a NUL byte")]
    Nul,
    /// Longer than the protocol allows.
    #[error("path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    /// Not under any shared folder.
    #[error("path {0:?} is outside the shared folders")]
    OutsideShares(String),
    /// Resolves, through a symlink, to a place outside the shared folders.
    #[error("path {0:?} leads outside the shared folders through a symbolic link")]
    SymlinkEscape(String),
    /// Does not exist.
    #[error("path {0:?} does not exist")]
    NotFound(String),
    /// A device, FIFO, socket or other file that is never read.
    #[error("path {0:?} is a {1}, which is never read")]
    Special(String, &'static str),
    /// A folder where a file was expected, or the reverse.
    #[error("path {0:?} is {1}")]
    WrongKind(String, &'static str),
    /// A request parameter that cannot be decoded.
    #[error("{0}")]
    Malformed(&'static str),
    /// A browse cursor this agent never gave out.
    #[error("malformed or unknown browse cursor")]
    BadCursor,
    /// The agent's user may not read it (a 403: retrying will not help).
    #[error("path {0:?}: permission denied")]
    PermissionDenied(String),
    /// Another program holds the file open without sharing it (Windows).
    #[error("path {0:?} is locked by another program")]
    Locked(String),
    /// Another OS error.
    #[error("path {0:?}: {1}")]
    Io(String, String),
}

impl PathError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            PathError::NotFound(_) => 404,
            PathError::Nul
            | PathError::TooLong
            | PathError::BadCursor
            | PathError::Malformed(_) => 400,
            PathError::Io(..) => 500,
            _ => 403,
        }
    }

    /// Maps an OS error on `path` to a path error.
    pub fn from_io(path: &str, e: &std::io::Error) -> Self {
        // ERROR_SHARING_VIOLATION and ERROR_LOCK_VIOLATION: open elsewhere, e.g. an Outlook PST.
        #[cfg(windows)]
        if matches!(e.raw_os_error(), Some(32) | Some(33)) {
            return PathError::Locked(path.to_owned());
        }
        match e.kind() {
            std::io::ErrorKind::NotFound => PathError::NotFound(path.to_owned()),
            std::io::ErrorKind::PermissionDenied => PathError::PermissionDenied(path.to_owned()),
            _ => PathError::Io(path.to_owned(), e.to_string()),
        }
    }
}

/// One shared root: as configured, and with symlinks resolved.
#[derive(Debug, Clone)]
struct Root {
    given: PathBuf,
    canonical: PathBuf,
}

/// The set of shared roots (empty: everything the agent's user can read).
#[derive(Debug, Clone, Default)]
pub struct Shares {
    roots: Vec<Root>,
}

impl Shares {
    /// Resolves the configured roots; a root that does not exist is an error.
    pub fn new(roots: &[PathBuf]) -> Result<Self, PathError> {
        let roots = roots
            .iter()
            .map(|given| {
                let shown = given.display().to_string();
                let canonical =
                    std::fs::canonicalize(given).map_err(|e| PathError::from_io(&shown, &e))?;
                if !canonical.is_dir() {
                    return Err(PathError::WrongKind(shown, "not a folder"));
                }
                Ok(Root {
                    given: normalize(given),
                    canonical,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { roots })
    }

    /// Whether any root restricts access.
    pub fn is_restricted(&self) -> bool {
        !self.roots.is_empty()
    }

    /// How [`Shares::resolve`] resolves paths.
    pub fn resolution(&self) -> Resolved {
        if self.is_restricted() {
            Resolved::Canonical
        } else {
            Resolved::AsGiven
        }
    }

    /// The roots as configured, for the agent's info.
    pub fn roots(&self) -> Vec<String> {
        self.roots
            .iter()
            .map(|r| r.given.display().to_string())
            .collect()
    }

    /// Checks `raw` and returns the real path to open (symlinks resolved when restricted).
    pub fn resolve(&self, raw: &Path) -> Result<PathBuf, PathError> {
        let path = check_syntax(raw)?;
        let raw = raw.display().to_string();
        let raw = raw.as_str();
        if self.roots.is_empty() {
            return Ok(path);
        }
        let inside = |p: &Path| {
            self.roots
                .iter()
                .any(|r| p.starts_with(&r.given) || p.starts_with(&r.canonical))
        };
        if !inside(&path) {
            return Err(PathError::OutsideShares(raw.to_owned()));
        }
        let real = std::fs::canonicalize(&path).map_err(|e| PathError::from_io(raw, &e))?;
        if !self.roots.iter().any(|r| real.starts_with(&r.canonical)) {
            return Err(PathError::SymlinkEscape(raw.to_owned()));
        }
        Ok(real)
    }
}

/// A folder resolved once for the many files of one request.
pub struct Folder {
    /// Its real path (symlinks resolved), inside a share.
    pub(crate) real: PathBuf,
    /// The folder itself, opened through its real path with no symlink allowed on the way
    /// (Linux), its files then looked up by name in it: a folder swapped for a symlink after
    /// it was checked cannot lead the rest of the request outside the share, and each file
    /// costs a one-name lookup instead of a walk of its whole path.
    #[cfg(unix)]
    pub(crate) handle: std::os::fd::OwnedFd,
}

impl Folder {
    fn open(real: PathBuf) -> std::io::Result<Self> {
        Ok(Self {
            #[cfg(unix)]
            handle: open_folder(&real)?,
            real,
        })
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn open_folder(real: &Path) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{openat, openat2, Mode, OFlags, ResolveFlags, CWD};
    // A path handle: no read permission needed, like walking through the folder by path.
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    // `real` has no symlinks in it, so one found on the way was swapped in since the check.
    match openat2(CWD, real, flags, Mode::empty(), ResolveFlags::NO_SYMLINKS) {
        // Kernels before 5.6, or a sandbox that refuses the call: the last name is still not
        // followed.
        Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {
            Ok(openat(CWD, real, flags | OFlags::NOFOLLOW, Mode::empty())?)
        }
        r => Ok(r?),
    }
}

#[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
fn open_folder(real: &Path) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{openat, Mode, OFlags, CWD};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    Ok(openat(CWD, real, flags, Mode::empty())?)
}

/// Folders already resolved while serving one request for many files, by path as given.
pub type FolderCache = std::collections::HashMap<PathBuf, Folder>;

/// Where one of many files is.
pub enum Located<'a> {
    /// By name in a folder resolved for the request.
    In(&'a Folder, std::ffi::OsString),
    /// By its whole path (a path outside any folder cache, e.g. with no shares set).
    Path(PathBuf, Resolved),
}

impl Located<'_> {
    /// The file's real path.
    pub fn real(&self) -> PathBuf {
        match self {
            Located::In(folder, name) => folder.real.join(name),
            Located::Path(p, _) => p.clone(),
        }
    }
}

/// How a path from [`Shares::resolve`] was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// Every symlink resolved and the result checked against the shares: none may appear on
    /// the way when it is opened.
    Canonical,
    /// As given: no shares are set, so whatever the agent's user can read, through symlinks too.
    AsGiven,
}

impl Shares {
    /// Like [`Shares::resolve`] for a file among many in few folders: each folder's symlinks
    /// are resolved once (in `folders`) instead of once per file. The file itself is not
    /// followed: opening it refuses a symlink, as a file listed as regular must not be one.
    pub fn resolve_file<'a>(
        &self,
        raw: &Path,
        folders: &'a mut FolderCache,
    ) -> Result<Located<'a>, PathError> {
        let path = check_syntax(raw)?;
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return self
                .resolve(raw)
                .map(|p| Located::Path(p, self.resolution()));
        };
        let parent_inside = self
            .roots
            .iter()
            .any(|r| parent.starts_with(&r.given) || parent.starts_with(&r.canonical));
        if self.roots.is_empty() || !parent_inside {
            return self
                .resolve(raw)
                .map(|p| Located::Path(p, self.resolution()));
        }
        let folder = match folders.entry(parent.to_owned()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let real = self.resolve(parent)?;
                let folder = Folder::open(real)
                    .map_err(|err| PathError::from_io(&parent.display().to_string(), &err))?;
                e.insert(folder)
            }
        };
        Ok(Located::In(folder, name.to_owned()))
    }
}

/// Syntax checks that need no file system: absolute, no `..`, no NUL, bounded length.
pub fn check_syntax(path: &Path) -> Result<PathBuf, PathError> {
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if bytes.contains(&0) {
        return Err(PathError::Nul);
    }
    if !path.is_absolute() {
        return Err(PathError::Relative(path.display().to_string()));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(PathError::DotDot(path.display().to_string()));
    }
    Ok(normalize(path))
}

/// A path from its exact bytes (base64), for names that are not UTF-8.
pub fn from_b64(b64: &str) -> Result<PathBuf, PathError> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| PathError::Malformed("path_b64 is not base64"))?;
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        Ok(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
    }
    #[cfg(not(unix))]
    {
        String::from_utf8(bytes)
            .map(PathBuf::from)
            .map_err(|_| PathError::Malformed("path_b64 is not UTF-8 (needed on this OS)"))
    }
}

/// The exact bytes of a name (base64) when it is not valid UTF-8.
pub fn name_b64(name: &std::ffi::OsStr) -> Option<String> {
    if name.to_str().is_some() {
        return None;
    }
    #[cfg(unix)]
    {
        use base64::Engine;
        use std::os::unix::ffi::OsStrExt;
        Some(base64::engine::general_purpose::STANDARD.encode(name.as_bytes()))
    }
    // Windows names are UTF-16; unpaired surrogates are shown lossily (see README).
    #[cfg(not(unix))]
    {
        None
    }
}

/// Drops `.` components and trailing separators so prefix checks compare like with like.
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| *c != Component::CurDir)
        .collect()
}

/// What is at a path, as far as reading it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A folder.
    Folder,
    /// A symbolic link (never followed).
    Symlink,
    /// A device, FIFO, socket or other special file (never read), by name.
    Special(&'static str),
}

impl Kind {
    /// From metadata read without following symlinks.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        {
            Self::of_mode(std::os::unix::fs::MetadataExt::mode(meta))
        }
        #[cfg(not(unix))]
        {
            let ft = meta.file_type();
            if ft.is_symlink() {
                Kind::Symlink
            } else if ft.is_dir() {
                Kind::Folder
            } else if ft.is_file() {
                Kind::File
            } else {
                Kind::Special("special file")
            }
        }
    }

    /// From a `st_mode`.
    #[cfg(unix)]
    pub fn of_mode(mode: u32) -> Self {
        use rustix::fs::FileType;
        match FileType::from_raw_mode(mode as _) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Folder,
            FileType::Symlink => Kind::Symlink,
            FileType::Fifo => Kind::Special("FIFO"),
            FileType::Socket => Kind::Special("socket"),
            FileType::CharacterDevice | FileType::BlockDevice => Kind::Special("device file"),
            FileType::Unknown => Kind::Special("special file"),
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn syntax_rules() {
        let check = |s: &str| check_syntax(Path::new(s));
        assert!(matches!(check("rel/a"), Err(PathError::Relative(_))));
        assert!(matches!(check("/a/../b"), Err(PathError::DotDot(_))));
        assert!(matches!(check("/a\0b"), Err(PathError::Nul)));
        assert!(matches!(
            check(&"/a".repeat(MAX_PATH_BYTES)),
            Err(PathError::TooLong)
        ));
        assert_eq!(check("/a/./b/").unwrap(), PathBuf::from("/a/b"));
    }

    #[test]
    fn non_utf8_names_round_trip_through_base64() {
        // "/tmp/caf\xe9.txt": Latin-1, not UTF-8.
        let raw = from_b64("L3RtcC9jYWbpLnR4dA==").unwrap();
        assert_eq!(
            name_b64(raw.file_name().unwrap()).as_deref(),
            Some("Y2Fm6S50eHQ=")
        );
        assert_eq!(name_b64(std::ffi::OsStr::new("plain.txt")), None);
        assert!(matches!(from_b64("%%%"), Err(PathError::Malformed(_))));
    }

    #[test]
    fn shares_confine_paths_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().join("share");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(share.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, share.join("escape")).unwrap();
        std::os::unix::fs::symlink(share.join("sub"), share.join("inner")).unwrap();
        let shares = Shares::new(std::slice::from_ref(&share)).unwrap();
        let s = |p: &Path| p.to_owned();
        assert!(shares.resolve(&s(&share.join("sub"))).is_ok());
        assert!(shares.resolve(&s(&share.join("inner"))).is_ok());
        assert!(matches!(
            shares.resolve(&s(&outside)),
            Err(PathError::OutsideShares(_))
        ));
        assert!(matches!(
            shares.resolve(&s(&share.join("escape"))),
            Err(PathError::SymlinkEscape(_))
        ));
        assert!(matches!(
            shares.resolve(&s(&share.join("nope"))),
            Err(PathError::NotFound(_))
        ));
        // A sibling whose name merely starts with the root's name is outside.
        std::fs::create_dir_all(dir.path().join("share2")).unwrap();
        assert!(matches!(
            shares.resolve(&s(&dir.path().join("share2"))),
            Err(PathError::OutsideShares(_))
        ));

        // Many files in few folders: the same answers, each folder resolved once.
        std::fs::write(outside.join("secret"), b"x").unwrap();
        std::fs::write(share.join("sub/f"), b"x").unwrap();
        let mut folders = FolderCache::new();
        assert!(matches!(
            shares.resolve_file(&share.join("escape/secret"), &mut folders),
            Err(PathError::SymlinkEscape(_))
        ));
        assert!(matches!(
            shares.resolve_file(&outside.join("secret"), &mut folders),
            Err(PathError::OutsideShares(_))
        ));
        let real = std::fs::canonicalize(&share).unwrap().join("sub/f");
        assert_eq!(
            shares
                .resolve_file(&share.join("inner/f"), &mut folders)
                .map(|l| l.real()),
            Ok(real.clone())
        );
        assert_eq!(
            shares
                .resolve_file(&share.join("sub/f"), &mut folders)
                .map(|l| l.real()),
            Ok(real)
        );
        assert_eq!(folders.len(), 2);
    }
}
