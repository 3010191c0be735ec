//! The app's self-update loop: checks the configured feed at start and every 6 hours, installs a
//! newer signed release on trial when no file is being served, then restarts into it. The
//! release runs from `.NAME.next` and must reconnect to Bifrost within the trial; only then is
//! it renamed over the installed app (the library's `update::trial`, shared with the CLI). A
//! release that fails, or never starts, is rolled back by itself or by the next launch.

use std::path::Path;
use std::time::Duration;

use mover_agent::update::{Outcome, Recovered, Trial, Updater, Verdict, CHECK_EVERY};
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
                Ok(Outcome::Installed(trial)) => {
                    let v = trial.version().to_owned();
                    tell(&app, format!("version {v} installed; restarting")).await;
                    restart(&app, &agent, trial).await;
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

/// Starts the release on trial and leaves; the new one waits for this process to exit so the
/// single-instance handoff does not send it back to us. It starts before this agent stops, so
/// a failed start leaves the running agent serving.
async fn restart(app: &AppHandle, agent: &Agent, trial: Trial) {
    match launch(&trial.candidate()) {
        Ok(()) => {
            agent.stop().await;
            agent.stopped().await;
            // From here the release judges itself; if it never starts, the next launch of the
            // installed app rolls it back (the trial is on disk).
            drop(trial);
            app.exit(0);
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot start the updated app");
            let _ = tokio::task::spawn_blocking(move || trial.roll_back()).await;
            tell(
                app,
                format!("the new version did not start ({e}); kept this one"),
            )
            .await;
        }
    }
}

/// Starts `exe` with this process's arguments, marked to wait for this process to leave.
fn launch(exe: &Path) -> std::io::Result<()> {
    let mut args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != AFTER_UPDATE_ARG)
        .collect();
    args.push(AFTER_UPDATE_ARG.into());
    std::process::Command::new(exe)
        .args(&args)
        .spawn()
        .map(drop)
}

/// First thing at start: finishes an update a crash interrupted (the old version runs again
/// when a release never proved itself) and returns the trial when this process is the release
/// on trial. A release whose trial already ended starts the installed app instead and exits.
pub fn recover_at_start() -> Option<Trial> {
    let exe = std::env::current_exe().ok()?;
    match mover_agent::update::recover(&exe) {
        Ok(Recovered::Candidate(trial)) => Some(trial),
        Ok(Recovered::Abandoned) => {
            let installed = mover_agent::update::Paths::for_exe(&exe).0;
            if let Err(e) = launch(installed.install()) {
                eprintln!("error: cannot start {}: {e}", installed.install().display());
            }
            std::process::exit(1);
        }
        Ok(_) => None,
        Err(e) => {
            eprintln!("warning: cannot finish an interrupted update: {e}");
            None
        }
    }
}

/// In the release on trial: keeps it once the agent reconnects, or rolls it back, starts the
/// installed (previous) app and quits.
pub async fn prove(app: AppHandle, agent: Agent, trial: Trial) {
    let install = trial.paths().install().to_owned();
    match mover_agent::update::prove(&agent, trial).await {
        Ok(Verdict::Kept(v)) => tell(&app, format!("version {v} installed")).await,
        outcome => {
            tracing::error!(?outcome, "the updated app failed its trial");
            agent.stop().await;
            agent.stopped().await;
            if let Err(e) = launch(&install) {
                tracing::error!(error = %e, "cannot start the previous app");
            }
            app.exit(1);
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
