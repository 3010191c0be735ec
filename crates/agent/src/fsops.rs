//! File-system work behind the tunnel's routes: listings, stat and streamed reads.

use std::collections::HashMap;
use std::fs::{File, Metadata, ReadDir};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use mover_proto::{BrowsePage, Entry, EntryKind, BROWSE_PAGE_SIZE};

use crate::paths::{Kind, Located, PathError, Resolved};

/// Bytes read from disk per chunk sent.
pub const READ_CHUNK: usize = 256 * 1024;
/// Open listings kept for paging; older ones are reopened and skipped forward.
const MAX_OPEN_LISTINGS: usize = 64;

/// Formats a time as RFC 3339 in UTC with nanoseconds.
pub fn rfc3339(t: SystemTime) -> Option<String> {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// An entry for `name` from metadata that was read without following symlinks.
pub fn entry(name: &std::ffi::OsStr, meta: &Metadata) -> Entry {
    let kind = match Kind::of(meta) {
        Kind::File => EntryKind::File,
        Kind::Folder => EntryKind::Dir,
        Kind::Symlink => EntryKind::Symlink,
        Kind::Special(_) => EntryKind::Other,
    };
    let size = if kind == EntryKind::File {
        meta.len()
    } else {
        0
    };
    Entry {
        name: name.to_string_lossy().into_owned(),
        name_b64: crate::paths::name_b64(name),
        kind,
        size,
        modified: meta.modified().ok().and_then(rfc3339),
    }
}

/// The entry of one path (not following a final symlink).
pub fn stat(real: &Path, shown: &str) -> Result<Entry, PathError> {
    let meta = std::fs::symlink_metadata(real).map_err(|e| PathError::from_io(shown, &e))?;
    let name = real.file_name().unwrap_or(real.as_os_str());
    Ok(entry(name, &meta))
}

struct OpenListing {
    path: PathBuf,
    iter: ReadDir,
    offset: u64,
    touched: Instant,
}

/// Listings being paged through, so each page continues where the last stopped
/// instead of re-reading the folder from its start.
#[derive(Default)]
pub struct Listings {
    open: Mutex<HashMap<u64, OpenListing>>,
}

impl Listings {
    /// One page of the folder at `real`; `cursor` comes from the previous page.
    pub fn page(
        &self,
        real: &Path,
        shown: &str,
        cursor: Option<&str>,
    ) -> Result<BrowsePage, PathError> {
        let bad_cursor = || PathError::BadCursor;
        let (id, offset) = match cursor {
            None => (None, 0),
            Some(c) => {
                let (id, offset) = c.split_once('-').ok_or_else(bad_cursor)?;
                (
                    Some(id.parse::<u64>().map_err(|_| bad_cursor())?),
                    offset.parse::<u64>().map_err(|_| bad_cursor())?,
                )
            }
        };
        let reusable = id
            .and_then(|id| self.lock().remove(&id))
            .filter(|l| l.path == real && l.offset == offset);
        let mut listing = match reusable {
            Some(l) => l,
            None => {
                let meta = std::fs::metadata(real).map_err(|e| PathError::from_io(shown, &e))?;
                if !meta.is_dir() {
                    return Err(PathError::WrongKind(shown.to_owned(), "not a folder"));
                }
                let mut iter =
                    std::fs::read_dir(real).map_err(|e| PathError::from_io(shown, &e))?;
                // A cursor whose listing expired: skip forward to where it stood.
                for _ in 0..offset {
                    if iter.next().is_none() {
                        break;
                    }
                }
                OpenListing {
                    path: real.to_owned(),
                    iter,
                    offset,
                    touched: Instant::now(),
                }
            }
        };
        let mut entries = Vec::with_capacity(BROWSE_PAGE_SIZE.min(256));
        let mut done = true;
        for item in listing.iter.by_ref() {
            listing.offset += 1;
            // An entry that vanished or cannot be read is left out, not fatal to the page.
            let Ok(item) = item else { continue };
            let Ok(meta) = item.metadata() else { continue };
            entries.push(entry(&item.file_name(), &meta));
            if entries.len() == BROWSE_PAGE_SIZE {
                done = false;
                break;
            }
        }
        let next_cursor = if done {
            None
        } else {
            let id = id.unwrap_or_else(random_id);
            let cursor = format!("{id}-{}", listing.offset);
            listing.touched = Instant::now();
            let mut open = self.lock();
            if open.len() >= MAX_OPEN_LISTINGS {
                if let Some(oldest) = open.iter().min_by_key(|(_, l)| l.touched).map(|(k, _)| *k) {
                    open.remove(&oldest);
                }
            }
            open.insert(id, listing);
            Some(cursor)
        };
        Ok(BrowsePage {
            entries,
            next_cursor,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, OpenListing>> {
        // A panic while holding the lock cannot leave the map inconsistent, so go on.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn random_id() -> u64 {
    let mut b = [0u8; 8];
    // The id only needs to differ between listings; fall back to the clock.
    if getrandom::fill(&mut b).is_err() {
        return SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
    }
    u64::from_le_bytes(b) >> 1
}

/// A file opened for reading, with the metadata it had when opened.
pub struct OpenFile {
    /// The open file.
    pub file: File,
    /// Its size when opened.
    pub size: u64,
    /// Its modification time when opened.
    pub modified: Option<SystemTime>,
}

/// Opens a regular file read-only, refusing folders, symlinks and special files. A path
/// [`Resolved::Canonical`] is opened with no symlink allowed anywhere on the way (Linux): one
/// swapped in after the path was checked against the shares cannot lead outside them.
pub fn open_file(real: &Path, shown: &str, how: Resolved) -> Result<OpenFile, PathError> {
    let meta = std::fs::symlink_metadata(real).map_err(|e| PathError::from_io(shown, &e))?;
    check_regular(&meta, shown)?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if how == Resolved::Canonical {
        use rustix::fs::{openat2, Mode, OFlags, ResolveFlags, CWD};
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK;
        match openat2(CWD, real, flags, Mode::empty(), ResolveFlags::NO_SYMLINKS) {
            Ok(fd) => return opened(File::from(fd), shown),
            Err(rustix::io::Errno::LOOP) => return Err(swapped(shown)),
            // Kernels before 5.6, or a sandbox that refuses the call: opened as below.
            Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {}
            Err(e) => return Err(PathError::from_io(shown, &e.into())),
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = how;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Never block on a FIFO swapped in after the check, never follow a swapped-in symlink.
        options.custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW);
    }
    let file = options.open(real).map_err(|e| {
        #[cfg(unix)]
        if e.raw_os_error() == Some(libc::ELOOP) {
            return swapped(shown);
        }
        PathError::from_io(shown, &e)
    })?;
    opened(file, shown)
}

/// A symlink where the check before opening found none.
#[cfg(unix)]
fn swapped(shown: &str) -> PathError {
    PathError::WrongKind(
        shown.to_owned(),
        "reached through a symbolic link that appeared after it was checked",
    )
}

/// The file just opened, if it is still a regular file.
fn opened(file: File, shown: &str) -> Result<OpenFile, PathError> {
    let meta = file.metadata().map_err(|e| PathError::from_io(shown, &e))?;
    check_regular(&meta, shown)?;
    Ok(OpenFile {
        size: meta.len(),
        modified: meta.modified().ok(),
        file,
    })
}

/// Opens one of many files where [`crate::paths::Shares::resolve_file`] found it, like
/// [`open_file`].
pub fn open_located(at: &Located<'_>, shown: &str) -> Result<OpenFile, PathError> {
    match at {
        #[cfg(unix)]
        Located::In(folder, name) => open_in(&folder.handle, name, shown),
        #[cfg(not(unix))]
        Located::In(..) => open_file(&at.real(), shown, Resolved::Canonical),
        Located::Path(real, how) => open_file(real, shown, *how),
    }
}

/// [`open_file`] by name in an open folder: one name looked up, not a whole path.
#[cfg(unix)]
fn open_in(
    folder: &std::os::fd::OwnedFd,
    name: &std::ffi::OsStr,
    shown: &str,
) -> Result<OpenFile, PathError> {
    use rustix::fs::{statat, AtFlags, Mode, OFlags};
    let io = |e: rustix::io::Errno| PathError::from_io(shown, &e.into());
    let stat = statat(folder, name, AtFlags::SYMLINK_NOFOLLOW).map_err(io)?;
    // Checked before opening: opening a device can act on it (a tape rewinds).
    check_kind(Kind::of_mode(stat.st_mode as u32), shown)?;
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK;
    let file = match rustix::fs::openat(folder, name, flags, Mode::empty()) {
        Ok(fd) => File::from(fd),
        Err(rustix::io::Errno::LOOP) => {
            return Err(PathError::WrongKind(shown.to_owned(), "a symbolic link"))
        }
        Err(e) => return Err(io(e)),
    };
    opened(file, shown)
}

fn check_regular(meta: &Metadata, shown: &str) -> Result<(), PathError> {
    check_kind(Kind::of(meta), shown)
}

/// Refuses anything but a regular file.
fn check_kind(kind: Kind, shown: &str) -> Result<(), PathError> {
    match kind {
        Kind::File => Ok(()),
        Kind::Folder => Err(PathError::WrongKind(shown.to_owned(), "a folder")),
        Kind::Symlink => Err(PathError::WrongKind(shown.to_owned(), "a symbolic link")),
        Kind::Special(kind) => Err(PathError::Special(shown.to_owned(), kind)),
    }
}

/// What a streamed read ended with.
pub enum ReadEnd {
    /// Every byte sent; the whole file's BLAKE3 when the read reached its end from any offset.
    Complete(Option<blake3::Hash>),
    /// Every byte of a BLAKE3 subtree sent, with the subtree's chaining value.
    Subtree([u8; 32]),
    /// The file changed size or time while it was read.
    Changed,
}

/// Whether `len` bytes from `start` form a BLAKE3 subtree other than the whole file: what a
/// ranged read with its own hash must be, so the receiver can merge the parts into the file's
/// hash without reading it again.
pub fn is_subtree(start: u64, len: u64, size: u64) -> bool {
    let chunk = blake3::guts::CHUNK_LEN as u64;
    len > 0
        && start.is_multiple_of(chunk)
        && !(start == 0 && len == size)
        && blake3::hazmat::max_subtree_len(start).is_none_or(|max| len <= max)
}

/// Streams `len` bytes from `start`, hashing the whole file when the read runs to its end, at
/// most `rate` bytes per second when given. Runs on a blocking thread; `send` returns false when
/// the receiver is gone.
///
/// Pacing here, at the sender, keeps a job's bandwidth limit from filling the office uplink's
/// buffers and the HTTP/2 window with bytes Bifrost would only read later.
pub fn stream_file(
    open: OpenFile,
    start: u64,
    len: u64,
    rate: Option<u64>,
    send: impl FnMut(Bytes) -> bool,
) -> std::io::Result<Option<ReadEnd>> {
    stream(open, start, len, rate, false, send)
}

/// Streams a BLAKE3 subtree (see [`is_subtree`]) and ends with its chaining value.
pub fn stream_subtree(
    open: OpenFile,
    start: u64,
    len: u64,
    send: impl FnMut(Bytes) -> bool,
) -> std::io::Result<Option<ReadEnd>> {
    stream(open, start, len, None, true, send)
}

fn stream(
    mut open: OpenFile,
    start: u64,
    len: u64,
    rate: Option<u64>,
    subtree: bool,
    mut send: impl FnMut(Bytes) -> bool,
) -> std::io::Result<Option<ReadEnd>> {
    use blake3::hazmat::HasherExt;
    let to_end = start + len == open.size;
    let mut hasher = (to_end || subtree).then(blake3::Hasher::new);
    if subtree {
        if let Some(h) = hasher.as_mut() {
            h.set_input_offset(start);
        }
    } else if let Some(h) = hasher.as_mut() {
        // A resumed read still proves the whole file: hash the prefix the receiver already has.
        let mut prefix = (&mut open.file).take(start);
        std::io::copy(&mut prefix, h)?;
    }
    open.file.seek(SeekFrom::Start(start))?;
    let mut left = len;
    let began = Instant::now();
    while left > 0 {
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64((len - left) as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(began.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let want = READ_CHUNK.min(usize::try_from(left).unwrap_or(READ_CHUNK));
        let (n, bytes) = if want < READ_CHUNK {
            // The tail, or a small file: sized to the read, as zeroing a whole chunk for a
            // 20 KiB file was the top cost of copying many small files.
            let mut buf = vec![0u8; want];
            let n = open.file.read(&mut buf)?;
            buf.truncate(n);
            (n, Bytes::from(buf))
        } else {
            let mut buf = crate::bufpool::CHUNKS.get();
            let n = open.file.read(buf.space())?;
            (n, buf.freeze(n))
        };
        if n == 0 {
            return Ok(Some(ReadEnd::Changed));
        }
        if let Some(h) = hasher.as_mut() {
            h.update(&bytes);
        }
        if !send(bytes) {
            return Ok(None);
        }
        left -= n as u64;
    }
    let now = open.file.metadata()?;
    if now.len() != open.size || now.modified().ok() != open.modified {
        return Ok(Some(ReadEnd::Changed));
    }
    if subtree {
        return Ok(hasher.map(|h| ReadEnd::Subtree(h.finalize_non_root())));
    }
    Ok(Some(ReadEnd::Complete(hasher.map(|h| h.finalize()))))
}

/// BLAKE3 of a whole file; `None` when it changed while it was read.
pub fn hash_file(open: OpenFile) -> std::io::Result<Option<mover_proto::FileHash>> {
    let size = open.size;
    let mut hash = None;
    let end = stream_file(open, 0, size, None, |_| true)?;
    if let Some(ReadEnd::Complete(Some(h))) = end {
        hash = Some(mover_proto::FileHash {
            blake3: h.to_hex().to_string(),
            size,
        });
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_visits_every_entry_once() {
        let dir = tempfile::tempdir().unwrap();
        let n = BROWSE_PAGE_SIZE * 2 + 7;
        for i in 0..n {
            std::fs::write(dir.path().join(format!("f{i}")), b"x").unwrap();
        }
        let listings = Listings::default();
        let mut seen = std::collections::HashSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = listings.page(dir.path(), "d", cursor.as_deref()).unwrap();
            for e in page.entries {
                assert!(seen.insert(e.name));
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), n);
        // An unknown cursor id reopens the folder and skips forward.
        let page = listings.page(dir.path(), "d", Some("12345-1500")).unwrap();
        assert_eq!(page.entries.len(), n - 1500);
        assert!(listings.page(dir.path(), "d", Some("junk")).is_err());
    }

    #[test]
    fn streamed_read_hashes_whole_file_from_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let mut got = Vec::new();
        let open = open_file(&path, "f", Resolved::AsGiven).unwrap();
        let end = stream_file(open, 1000, data.len() as u64 - 1000, None, |b| {
            got.extend_from_slice(&b);
            true
        })
        .unwrap();
        assert_eq!(got, data[1000..]);
        match end {
            Some(ReadEnd::Complete(Some(h))) => assert_eq!(h, blake3::hash(&data)),
            _ => panic!("expected a whole-file hash"),
        }
    }

    #[test]
    fn subtree_reads_end_with_the_parts_chaining_value() {
        use blake3::hazmat::{merge_subtrees_root, HasherExt, Mode};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let size = data.len() as u64;
        let left = blake3::hazmat::left_subtree_len(size);
        let mut cvs = Vec::new();
        for (start, len) in [(0, left), (left, size - left)] {
            assert!(is_subtree(start, len, size));
            let mut got = Vec::new();
            let open = open_file(&path, "f", Resolved::AsGiven).unwrap();
            let end = stream_subtree(open, start, len, |b| {
                got.extend_from_slice(&b);
                true
            })
            .unwrap();
            assert_eq!(got, data[start as usize..(start + len) as usize]);
            let Some(ReadEnd::Subtree(cv)) = end else {
                panic!("expected a chaining value")
            };
            let mut h = blake3::Hasher::new();
            h.set_input_offset(start);
            h.update(&got);
            assert_eq!(cv, h.finalize_non_root());
            cvs.push(cv);
        }
        assert_eq!(
            merge_subtrees_root(&cvs[0], &cvs[1], Mode::Hash),
            blake3::hash(&data)
        );
        // Not subtrees: unaligned, too long for their offset, or the whole file.
        assert!(!is_subtree(1000, 1024, size));
        assert!(!is_subtree(1024, 4096, size));
        assert!(!is_subtree(0, size, size));
        assert!(!is_subtree(0, 0, size));
    }
}

#[cfg(all(test, unix))]
mod special_tests {
    use super::*;

    #[test]
    fn fifos_devices_and_symlinks_are_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // Opening a FIFO for reading would block forever; it must be refused first.
        assert!(matches!(
            open_file(&fifo, "pipe", Resolved::AsGiven),
            Err(PathError::Special(_, "FIFO"))
        ));
        assert!(matches!(
            open_file(Path::new("/dev/null"), "null", Resolved::AsGiven),
            Err(PathError::Special(_, "device file"))
        ));
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("f"), dir.path().join("l")).unwrap();
        assert!(matches!(
            open_file(&dir.path().join("l"), "l", Resolved::AsGiven),
            Err(PathError::WrongKind(_, "a symbolic link"))
        ));
        assert!(matches!(
            open_file(dir.path(), "d", Resolved::AsGiven),
            Err(PathError::WrongKind(_, "a folder"))
        ));
        let listing = Listings::default().page(dir.path(), "d", None).unwrap();
        let kind = |n: &str| listing.entries.iter().find(|e| e.name == n).unwrap().kind;
        assert_eq!(kind("pipe"), EntryKind::Other);
        assert_eq!(kind("l"), EntryKind::Symlink);
        assert_eq!(kind("f"), EntryKind::File);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_folder_swapped_for_a_symlink_after_the_check_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().join("share");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(share.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(share.join("sub/f"), b"inside").unwrap();
        std::fs::write(outside.join("f"), b"secret").unwrap();
        let shares = crate::paths::Shares::new(std::slice::from_ref(&share)).unwrap();
        let real = shares.resolve(&share.join("sub/f")).unwrap();
        assert_eq!(shares.resolution(), Resolved::Canonical);

        // Between the check and the open, the folder becomes a symlink to outside the share.
        std::fs::rename(share.join("sub"), share.join("moved")).unwrap();
        std::os::unix::fs::symlink(&outside, share.join("sub")).unwrap();
        let got = open_file(&real, "f", Resolved::Canonical);
        assert!(
            matches!(got, Err(PathError::WrongKind(_, m)) if m.contains("symbolic link")),
            "the file outside the share was opened"
        );
        // Without shares, symlinks on the way are the user's own to follow.
        let mut open = open_file(&real, "f", Resolved::AsGiven).unwrap();
        let mut content = String::new();
        open.file.read_to_string(&mut content).unwrap();
        assert_eq!(content, "secret");
    }
}
