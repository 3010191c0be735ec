//! The one place that decides whether a failed write means "the destination is full".
//!
//! A full disk (ENOSPC) and a used-up quota (EDQUOT) are the same thing to a job: nothing more
//! fits until someone frees space, so the job pauses instead of failing its files one by one.
//! Every write to a destination maps its error through [`is_disk_full`] (by way of
//! `folder::local`) into `CopyError::DiskFull`, whose kind `disk_full` is how a resumed job
//! finds the files again (`Store::retry_disk_full`); their reason starts with [`PREFIX`] for
//! people, and for the rows an older Bifrost recorded without a kind.

use std::io;

/// How every disk-full reason starts: what the store finds an older Bifrost's rows by.
pub const PREFIX: &str = "disk full:";

/// The reason an older Bifrost recorded for the same failure, still retried on resume.
pub const OLD_REASON: &str = "the destination disk is full";

/// The job's reason when it pauses on a full destination.
pub const JOB_REASON: &str =
    "disk full: the destination has no space left; free some, then resume the job";

/// Whether `e` says the destination has no room left: no space (ENOSPC) or the quota of the
/// user Bifrost runs as is used up (EDQUOT).
pub fn is_disk_full(e: &io::Error) -> bool {
    use io::ErrorKind as K;
    if matches!(e.kind(), K::StorageFull | K::QuotaExceeded) {
        return true;
    }
    // The kinds above come from the same numbers; checked by number too so that an error
    // rebuilt from a raw code (or a platform whose mapping differs) is not missed.
    #[cfg(unix)]
    if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
        return true;
    }
    false
}

/// The reason a file that hit a full destination is failed with.
pub fn reason(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::QuotaExceeded {
        format!("{PREFIX} the quota at the destination is used up ({e}); free some space or raise the quota, then resume the job")
    } else {
        format!("{PREFIX} no space left at the destination ({e}); free some, then resume the job")
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn no_space_and_a_used_up_quota_are_both_a_full_disk() {
        for code in [libc::ENOSPC, libc::EDQUOT] {
            let e = io::Error::from_raw_os_error(code);
            assert!(is_disk_full(&e), "{e}");
            assert!(reason(&e).starts_with(PREFIX), "{}", reason(&e));
        }
        assert!(reason(&io::Error::from_raw_os_error(libc::EDQUOT)).contains("quota"));
        assert!(is_disk_full(&io::Error::from(io::ErrorKind::StorageFull)));
    }

    #[test]
    fn other_write_errors_are_not() {
        for code in [
            libc::EACCES,
            libc::EIO,
            libc::EROFS,
            libc::EMFILE,
            libc::EFBIG,
        ] {
            assert!(!is_disk_full(&io::Error::from_raw_os_error(code)));
        }
        assert!(!is_disk_full(&io::Error::other("no space, said someone")));
    }

    #[test]
    fn every_write_at_the_destination_pauses_on_a_full_quota() {
        use super::super::local;
        use crate::failure::CopyError;
        let path = std::path::Path::new("/dest/.a.mover-part");
        for code in [libc::ENOSPC, libc::EDQUOT] {
            let e = local(io::Error::from_raw_os_error(code), "write", path);
            assert!(matches!(e, CopyError::DiskFull(ref r) if r.starts_with(PREFIX)));
            assert_eq!(e.kind(), "disk_full");
        }
        let e = local(io::Error::from_raw_os_error(libc::EACCES), "write", path);
        assert!(matches!(e, CopyError::Local(ref r) if r.contains("/dest/.a.mover-part")));
    }
}
