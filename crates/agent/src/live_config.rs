//! Live config: the agent watches its config file and applies an edit (Bifrost address, shares)
//! without a restart, in the CLI and the desktop app alike.

use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};

use crate::config::Config;
use crate::runtime::Agent;

/// Editors save in bursts (write, rename, chmod); settle before reading.
const SETTLE: Duration = Duration::from_millis(300);

/// Watches `agent`'s config file until the agent stops.
pub fn watch(agent: &Agent) -> notify::Result<()> {
    let home = agent.home().clone();
    let file = home.config_file();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let name = file.file_name().map(|n| n.to_owned());
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            let touches = event
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_owned()) == name);
            if touches && !matches!(event.kind, EventKind::Access(_)) {
                let _ = tx.send(());
            }
        }
    })?;
    // The folder, not the file: editors and `Config::save` replace the file by renaming.
    watcher.watch(home.dir(), RecursiveMode::NonRecursive)?;
    let agent = agent.clone();
    tokio::spawn(async move {
        let _watcher = watcher;
        loop {
            tokio::select! {
                got = rx.recv() => if got.is_none() { return },
                _ = agent.stopped() => return,
            }
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
            match Config::load(&file) {
                Ok(config) if config != agent.config() => match agent.reconfigure(config) {
                    Ok(()) => {
                        tracing::info!(file = %file.display(), "config file changed; new settings applied")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "config file changed but cannot be applied; keeping the current settings")
                    }
                },
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "config file changed but is invalid; keeping the current settings")
                }
            }
        }
    });
    Ok(())
}
