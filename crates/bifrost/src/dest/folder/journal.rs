//! A folder destination's temporary files and parts journals: the name a copy is written
//! under before its rename, and the journal that lets a restarted Bifrost fetch only the parts
//! it lacks, synced in the background a batch of parts at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;

use super::write::local;
use crate::failure::CopyError;

/// The temporary file a copy is written to before its rename to `dest`, beside it.
pub fn partial_path(dest: &Path) -> std::path::PathBuf {
    // From the name's exact bytes: two names that differ only in bytes that are not UTF-8 must
    // not share a temporary file.
    let mut name = std::ffi::OsString::from(".");
    name.push(dest.file_name().unwrap_or_default());
    name.push(".mover-part");
    dest.with_file_name(name)
}

/// The journal of a partial file's finished parts, beside it: a header line with the
/// source's size and modification time, then one line per part (`START LEN CV`), each written
/// after the part's bytes were synced, so a restarted Bifrost fetches only the missing parts.
pub fn parts_journal(partial: &Path) -> std::path::PathBuf {
    let mut name = partial.file_name().unwrap_or_default().to_os_string();
    name.push(".parts");
    partial.with_file_name(name)
}

pub fn journal_header(size: u64, modified: Option<&str>) -> String {
    format!("mover-parts 1 {size} {}\n", modified.unwrap_or("-"))
}

/// The finished parts a journal records for this version of the source.
pub fn read_journal(text: &str, header: &str, parts: &[(u64, u64)]) -> BTreeMap<u64, [u8; 32]> {
    let mut done = BTreeMap::new();
    let mut lines = text.lines();
    if lines.next().map(|l| format!("{l}\n")) != Some(header.to_owned()) {
        return done;
    }
    let known: std::collections::HashMap<u64, u64> = parts.iter().copied().collect();
    for line in lines {
        let mut f = line.split(' ');
        let (Some(start), Some(len), Some(cv)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let (Ok(start), Ok(len), Some(cv)) =
            (start.parse(), len.parse(), crate::tree::parse_cv(cv))
        else {
            continue;
        };
        if known.get(&start) == Some(&len) {
            done.insert(start, cv);
        }
    }
    done
}

/// The journal of a file being written in parts, and its parts whose bytes are not yet synced.
///
/// Parts are journaled only once their bytes are synced, a batch at a time: a sync per part
/// cost half the throughput, and a batch lost to a crash is a few parts read again. The sync
/// runs while the next parts stream in: waiting for it stalled every part in flight while the
/// disk wrote up to 64 MiB.
pub struct PartsLog {
    path: PathBuf,
    log: tokio::fs::File,
    /// The temporary file, opened once for the syncs.
    syncer: std::sync::Arc<std::fs::File>,
    sync_every: u64,
    unsynced: Vec<(u64, u64, [u8; 32])>,
    syncing: Option<Syncing>,
}

type Syncing = (
    tokio::task::JoinHandle<std::io::Result<()>>,
    Vec<(u64, u64, [u8; 32])>,
);

impl PartsLog {
    /// Opens the journal `path` of `partial`, a file of `size` bytes, to append to.
    pub async fn open(path: PathBuf, partial: &Path, size: u64) -> Result<Self, CopyError> {
        let log = tokio::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .await
            .map_err(|e| local(e, "open", &path))?;
        let syncer = tokio::fs::OpenOptions::new()
            .write(true)
            .open(partial)
            .await
            .map_err(|e| local(e, "open", partial))?
            .into_std()
            .await;
        Ok(Self {
            path,
            log,
            syncer: std::sync::Arc::new(syncer),
            sync_every: (size / 16).clamp(crate::tree::PART, 64 << 20),
            unsynced: Vec::new(),
            syncing: None,
        })
    }

    /// A part's bytes are written: journaled once a sync covers them.
    pub async fn written(&mut self, part: (u64, u64, [u8; 32])) -> Result<(), CopyError> {
        self.unsynced.push(part);
        if self.syncing.as_ref().is_some_and(|(t, _)| t.is_finished()) {
            self.settle().await?;
        }
        if self.syncing.is_none()
            && self.unsynced.iter().map(|p| p.1).sum::<u64>() >= self.sync_every
        {
            let file = self.syncer.clone();
            let task = tokio::task::spawn_blocking(move || file.sync_data());
            self.syncing = Some((task, std::mem::take(&mut self.unsynced)));
        }
        Ok(())
    }

    /// Waits for the sync in progress and journals the parts it covered. Its error is the
    /// file's: a sync still running may be the one that meets a write-back error, and the file
    /// the final sync opens after it would not hear of that error.
    pub async fn settle(&mut self) -> Result<(), CopyError> {
        let Some((task, parts)) = self.syncing.take() else {
            return Ok(());
        };
        task.await
            .map_err(CopyError::internal)?
            .map_err(|e| local(e, "sync", &self.path))?;
        let mut lines = String::new();
        for (start, len, cv) in parts {
            let hex: String = cv.iter().map(|b| format!("{b:02x}")).collect();
            lines.push_str(&format!("{start} {len} {hex}\n"));
        }
        self.log
            .write_all(lines.as_bytes())
            .await
            .map_err(|e| local(e, "write", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn temporary_names_keep_the_exact_bytes_of_the_name() {
        use std::os::unix::ffi::OsStrExt;
        let dir = std::path::Path::new("/d");
        let a = partial_path(&dir.join(std::ffi::OsStr::from_bytes(b"caf\xe9")));
        let b = partial_path(&dir.join(std::ffi::OsStr::from_bytes(b"caf\xe8")));
        assert_ne!(a, b);
        assert_eq!(a.as_os_str().as_bytes(), b"/d/.caf\xe9.mover-part");
    }
}
