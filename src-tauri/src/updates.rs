//! The app's self-update loop: checks the configured feed at start and every 6 hours, installs a
//! newer signed release when no file is being served, then restarts into it.

use std::time::Duration;

use mover_agent::update::{Outcome, Updater, CHECK_EVERY};
use mover_agent::Agent;
use tauri::{AppHandle, Manager};

use crate::controller::{Request, Shared};

/// The product name in release archives.
pub const PRODUCT: &str = "mover-agent-desktop";
/// Retry delay when an update waits for a transfer to end.
const RETRY_AFTER_TRANSFER: Duration = Duration::from_secs(300);
/// Passed to the new binary so it waits for this process to leave before taking over.
pub const AFTER_UPDATE_ARG: &str = "--after-update";

async fn tell(app: &AppHandle, line: String) {
    let tx = app.state::<Shared>().tx.clone();
    let _ = tx.send(Request::Updates(line)).await;
}

/// Runs until the app quits or an update was installed (the app then restarts).
pub async fn run(app: AppHandle, agent: Agent) {
    loop {
        let config = agent.config();
        let Some(feed) = config.update_feed.clone() else {
            tell(&app, "not configured (no update_feed in the config)".into()).await;
            // The config may gain a feed later (live config): look again in a while.
            tokio::time::sleep(RETRY_AFTER_TRANSFER).await;
            continue;
        };
        let bin = format!("{PRODUCT}{}", std::env::consts::EXE_SUFFIX);
        let mut next = CHECK_EVERY;
        match Updater::for_current_exe(&feed, PRODUCT, &bin, config) {
            Err(e) => tell(&app, format!("cannot update: {e}")).await,
            Ok(updater) => match updater.run(|| agent.reads_in_flight() > 0).await {
                Ok(Outcome::UpToDate) => tell(&app, format!("up to date (from {feed})")).await,
                Ok(Outcome::Managed) => {
                    tell(&app, "through the package manager".into()).await;
                    return;
                }
                Ok(Outcome::Waiting(v)) => {
                    tell(&app, format!("version {v} waits for the transfer to end")).await;
                    next = RETRY_AFTER_TRANSFER;
                }
                Ok(Outcome::Installed(v)) => {
                    tell(&app, format!("version {v} installed; restarting")).await;
                    restart(&app, &agent, &updater).await;
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "update check");
                    tell(&app, format!("last check failed: {e}")).await;
                }
            },
        }
        tokio::time::sleep(next).await;
    }
}

/// Starts the newly installed binary and leaves; the new one waits for this process to exit so
/// the single-instance handoff does not send it back to us. The new binary starts before this
/// agent stops, so a failed start leaves the running agent serving.
async fn restart(app: &AppHandle, agent: &Agent, updater: &Updater) {
    let mut args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != AFTER_UPDATE_ARG)
        .collect();
    args.push(AFTER_UPDATE_ARG.into());
    match std::process::Command::new(&updater.install_path)
        .args(&args)
        .spawn()
    {
        Ok(_) => {
            agent.stop().await;
            agent.stopped().await;
            app.exit(0);
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot start the updated app");
            tell(
                app,
                format!("installed, but the new version did not start ({e}); reopen the app"),
            )
            .await;
        }
    }
}

/// In a binary started by [`restart`]: waits (at most 10 s) for the old process to exit.
pub fn wait_for_previous_instance() {
    if !std::env::args().any(|a| a == AFTER_UPDATE_ARG) {
        return;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    #[cfg(unix)]
    {
        // The old process is our parent: once it exits we are re-parented.
        let parent = std::os::unix::process::parent_id();
        while std::os::unix::process::parent_id() == parent && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    #[cfg(not(unix))]
    {
        let _ = deadline;
        std::thread::sleep(Duration::from_secs(2));
    }
}
