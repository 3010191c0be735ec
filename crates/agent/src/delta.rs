//! Live delta: watches the folders Bifrost asks about (the sources of a job kept in sync until
//! cut-over) and reports which of them changed, so Bifrost can start the next incremental pass.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use notify::event::ModifyKind;
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::broadcast;

use crate::paths::Shares;

/// Changes are gathered this long before they are reported, so a burst is one report.
const SETTLE: Duration = Duration::from_secs(1);

/// The folders being watched, and where their changes go.
pub struct Delta {
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
    /// Roots (as Bifrost named them) that changed, reported per settled burst.
    pub changes: broadcast::Sender<Vec<String>>,
}

impl Default for Delta {
    fn default() -> Self {
        Self {
            watcher: Mutex::new(None),
            changes: broadcast::Sender::new(16),
        }
    }
}

/// Whether an event is a change of content or names (reads and attribute updates are not).
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        _ => false,
    }
}

impl Delta {
    /// Watches exactly `roots` from now on (none: stops watching). Each root must be inside the
    /// shares; the first that is not is refused and nothing changes.
    pub fn watch(&self, shares: &Shares, roots: Vec<String>) -> Result<usize, String> {
        let mut resolved: Vec<(String, PathBuf)> = Vec::with_capacity(roots.len());
        for root in roots {
            let real = shares
                .resolve(std::path::Path::new(&root))
                .map_err(|e| e.to_string())?;
            resolved.push((root, real));
        }
        let mut slot = self.watcher.lock().unwrap_or_else(|e| e.into_inner());
        *slot = None;
        if resolved.is_empty() {
            tracing::info!("live delta: watching nothing");
            return Ok(0);
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let map = resolved.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if !is_change(&event.kind) {
                    return;
                }
                for path in &event.paths {
                    if let Some((root, _)) = map.iter().find(|(_, real)| path.starts_with(real)) {
                        let _ = tx.send(root.clone());
                    }
                }
            })
            .map_err(|e| format!("cannot watch: {e}"))?;
        for (root, real) in &resolved {
            watcher
                .watch(real, RecursiveMode::Recursive)
                .map_err(|e| format!("cannot watch {root}: {e}"))?;
        }
        *slot = Some(watcher);
        let changes = self.changes.clone();
        // Ends when the watcher (and with it the sender) is replaced or dropped.
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                tokio::time::sleep(SETTLE).await;
                let mut roots = vec![first];
                while let Ok(more) = rx.try_recv() {
                    if !roots.contains(&more) {
                        roots.push(more);
                    }
                }
                tracing::info!(roots = roots.len(), "live delta: changes seen");
                let _ = changes.send(roots);
            }
        });
        tracing::info!(roots = resolved.len(), "live delta: watching");
        Ok(resolved.len())
    }
}
