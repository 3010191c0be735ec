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
    std::fs::create_dir_all(dir)?;
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
