//! The counters behind `/metrics`: file results as the store records them, and requests to
//! object-store destinations.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use mover_proto::api::FileStatus;

use crate::failure::UNRECORDED;

/// File results recorded since Bifrost started.
#[derive(Default)]
pub struct Tally {
    pub(super) files_copied: AtomicU64,
    pub(super) bytes_copied: AtomicU64,
    pub(super) files_skipped: AtomicU64,
    pub(super) bytes_skipped: AtomicU64,
    pub(super) files_deleted: AtomicU64,
    /// Failed files by kind (`failure::CopyError::kind`).
    pub(super) failed: Mutex<BTreeMap<&'static str, u64>>,
    /// Files and bytes copied, by the kind of destination they landed in.
    pub(super) landed: Mutex<BTreeMap<&'static str, (u64, u64)>>,
}

impl Tally {
    /// Counts `files` copied files of `bytes` into a destination of `kind`.
    pub fn landed(&self, kind: &'static str, files: u64, bytes: u64) {
        let mut landed = self.landed.lock().unwrap_or_else(|e| e.into_inner());
        let e = landed.entry(kind).or_default();
        e.0 += files;
        e.1 += bytes;
    }

    /// Counts one file that reached a final status; a failed one by its `kind`, so that
    /// rewording a reason does not move a metric.
    pub fn record(&self, status: FileStatus, size: u64, kind: Option<&'static str>) {
        match status {
            FileStatus::Copied => {
                self.files_copied.fetch_add(1, Ordering::Relaxed);
                self.bytes_copied.fetch_add(size, Ordering::Relaxed);
            }
            FileStatus::Skipped => {
                self.files_skipped.fetch_add(1, Ordering::Relaxed);
                self.bytes_skipped.fetch_add(size, Ordering::Relaxed);
            }
            FileStatus::Failed => {
                *self
                    .failed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(kind.unwrap_or(UNRECORDED))
                    .or_default() += 1;
            }
            FileStatus::Deleted => {
                self.files_deleted.fetch_add(1, Ordering::Relaxed);
            }
            FileStatus::Pending => {}
        }
    }

    /// Files failed with `kind` so far.
    pub fn failed(&self, kind: &str) -> u64 {
        self.failed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(kind)
            .copied()
            .unwrap_or_default()
    }
}

/// Requests Bifrost made to object-store destinations, by destination kind and answer: an
/// HTTP status, or `error` when no answer came (refused, reset, timed out). Retries count.
#[derive(Debug, Default)]
pub struct DestinationRequests(pub(super) Mutex<BTreeMap<(&'static str, Option<u16>), u64>>);

impl DestinationRequests {
    /// Counts one request to a `kind` destination answered with `status` (`None`: no answer).
    pub fn record(&self, kind: &'static str, status: Option<u16>) {
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((kind, status))
            .or_default() += 1;
    }

    /// How many `kind` requests got `status` so far.
    pub fn count(&self, kind: &str, status: Option<u16>) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|((k, s), _)| *k == kind && *s == status)
            .map(|(_, n)| n)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_by_status_and_failures_by_kind() {
        let t = Tally::default();
        t.record(FileStatus::Copied, 10, None);
        t.record(FileStatus::Copied, 5, None);
        t.record(FileStatus::Skipped, 7, None);
        t.record(FileStatus::Failed, 3, Some("changed"));
        t.record(FileStatus::Failed, 3, Some("service"));
        t.record(FileStatus::Failed, 3, Some("service"));
        t.record(FileStatus::Failed, 3, None);
        t.record(FileStatus::Pending, 3, None);
        assert_eq!(t.files_copied.load(Ordering::Relaxed), 2);
        assert_eq!(t.bytes_copied.load(Ordering::Relaxed), 15);
        assert_eq!(t.files_skipped.load(Ordering::Relaxed), 1);
        assert_eq!(
            (
                t.failed("changed"),
                t.failed("service"),
                t.failed(UNRECORDED)
            ),
            (1, 2, 1)
        );
    }
}
