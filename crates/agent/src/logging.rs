//! Log files: daily-rotating, in the agent's log folder, never holding the key.

use std::path::Path;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Keeps the background log writer alive; drop it at exit to flush.
pub type LogGuard = tracing_appender::non_blocking::WorkerGuard;

/// Sends `tracing` events to `DIR/NAME.YYYY-MM-DD` (level from `MOVER_LOG`, default `info`).
/// For front ends: the runtime itself only emits events.
pub fn init(dir: &Path, name: &str) -> std::io::Result<LogGuard> {
    create_private_dir(dir)?;
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(name)
        .filename_suffix("log")
        .max_log_files(30)
        .build(dir)
        .map_err(std::io::Error::other)?;
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = EnvFilter::try_from_env("MOVER_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(false);
    // A second init (tests, an embedding app that already logs) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init();
    Ok(guard)
}

/// Creates `dir` (and missing parents) readable by this user only (0700 on Unix), whatever the
/// umask: the logs name every path Bifrost browsed or read, which other local users must not
/// learn. A folder left open by an older version is closed too.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        // The mode is given at mkdir, so the folder is never open, even for an instant; the
        // umask can only take bits away from 0700.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let meta = std::fs::metadata(dir)?;
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        // Per-user folders (%LOCALAPPDATA%, the service's ProgramData home) carry the ACLs.
        std::fs::create_dir_all(dir)
    }
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_log_folder_is_private_from_creation_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("state/mover/logs");
        // The usual umask (022) would leave a plain create_dir_all at 0755.
        let _guard = init(&logs, "test").unwrap();
        assert_eq!(mode(&logs), 0o700);
        assert_eq!(mode(&dir.path().join("state/mover")), 0o700);
    }

    #[test]
    fn an_open_log_folder_left_by_an_older_version_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&logs).unwrap();
        assert_eq!(mode(&logs), 0o700);
    }
}
