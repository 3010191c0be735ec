//! Self-update of the command-line agent and the service (opt-in `--auto-update`): checks the
//! feed at start and every 6 hours, never during a transfer, installs a signed newer release on
//! trial, hands over to it, and keeps it only once it has reconnected to Bifrost within 60 s.
//!
//! The release runs from `.agent.next` beside the installed binary, which stays the old one
//! until the release is healthy and is then replaced in one rename (the library's
//! `update::trial`). The trial is on disk: a release that crashes, or whose parent is killed,
//! is rolled back by the next process of this binary ([`recover_at_start`]). The old process
//! stays the new one's parent: the process a service manager or a terminal watches stays the
//! same, and after a successful trial it only relays a stop to the new one.

use std::process::ExitCode;
use std::time::Duration;

use mover_agent::control::{Client, Reply, Request};
use mover_agent::update::{Outcome, Recovered, Trial, Updater, Verdict, CHECK_EVERY};
use mover_agent::{Agent, AgentHome};

/// The product name in the release archives (`moveragent-VERSION-TARGET.tar.gz`).
pub const PRODUCT: &str = "moveragent";
/// File content moved this recently counts as a transfer still running.
const QUIET: Duration = Duration::from_secs(20);
/// How often to look again while an update waits for a transfer to end.
const WAIT_POLL: Duration = Duration::from_secs(15);
/// How long a check at start waits for the tunnel (the feed is usually on Bifrost).
const START_WAIT: Duration = Duration::from_secs(60);

/// The binary's path inside a release archive, laid out like the original's zip.
pub fn path_in_archive() -> String {
    format!("moveragent/agent{}", std::env::consts::EXE_SUFFIX)
}

/// A release installed on trial beside the running binary.
pub struct Installed {
    /// Its version.
    pub version: String,
    /// Its trial: the binary to start, then commit or roll back.
    pub trial: Trial,
}

/// How a hand-over ended.
pub enum HandOver {
    /// The new version ran and has exited (or was stopped) with this code.
    Done(ExitCode),
    /// The new version failed its trial and the previous binary is back in place.
    RolledBack,
}

/// What this process is, after finishing any update a crash interrupted.
pub enum AtStart {
    /// The installed binary, or no update in sight.
    Installed,
    /// The release on trial: it must reconnect before the deadline (see [`prove`]).
    Candidate(Trial),
    /// A release whose trial was already ended: it must not serve.
    Abandoned,
}

/// Run first by every `agent` command: a trial nobody finishes any more (its parent was
/// killed, the release crashed) is rolled back here, so the old version runs again.
pub fn recover_at_start() -> AtStart {
    let Ok(exe) = std::env::current_exe() else {
        return AtStart::Installed;
    };
    match mover_agent::update::recover(&exe) {
        Ok(Recovered::Candidate(trial)) => AtStart::Candidate(trial),
        Ok(Recovered::Abandoned) => AtStart::Abandoned,
        Ok(Recovered::RolledBack(v)) => {
            eprintln!("Update: version {v} did not finish its trial; it was rolled back");
            AtStart::Installed
        }
        Ok(Recovered::Completed(v)) => {
            eprintln!("Update: finished installing version {v}");
            AtStart::Installed
        }
        Ok(Recovered::Nothing | Recovered::Busy) => AtStart::Installed,
        // Typically a user who may not write to the install folder; the service's own
        // start (as the install's owner) recovers it.
        Err(e) => {
            tracing::debug!(error = %e, "update recovery");
            AtStart::Installed
        }
    }
}

/// In the release on trial: waits for the tunnel until the trial's deadline, then keeps this
/// release (it becomes the installed binary) or rolls it back and stops the agent. Returns
/// whether the release was kept.
pub async fn prove(agent: Agent, trial: Trial) -> bool {
    match mover_agent::update::prove(&agent, trial).await {
        Ok(Verdict::Kept(version)) => {
            println!("Update: version {version} reconnected and is now installed");
            return true;
        }
        Ok(Verdict::RolledBack(version)) => {
            println!("Update: version {version} did not reconnect in time; rolled back");
        }
        Err(e) => {
            tracing::error!(error = %e, "ending the update's trial");
            println!("Update: cannot end the update's trial: {e}");
        }
    }
    agent.stop().await;
    false
}

/// Checks for updates until one is installed; answers `agent update` requests meanwhile.
pub async fn check_loop(agent: Agent) -> Installed {
    let mut requests = agent.take_update_requests();
    // The feed is usually on Bifrost: give the tunnel a moment before the first check.
    let mut status = agent.watch_status();
    let _ = tokio::time::timeout(START_WAIT, status.wait_for(|s| s.online)).await;
    let mut next = Duration::ZERO;
    loop {
        let asked = tokio::select! {
            _ = tokio::time::sleep(next) => None,
            Some(reply) = async {
                match requests.as_mut() {
                    Some(r) => r.recv().await,
                    None => std::future::pending().await,
                }
            } => Some(reply),
        };
        let (message, wait, installed) = check_once(&agent).await;
        println!("Update: {message}");
        if let Some(reply) = asked {
            let _ = reply.send(message);
        }
        if let Some(installed) = installed {
            return installed;
        }
        next = wait;
    }
}

/// One check: what happened in words, when to check again, and the install if there was one.
async fn check_once(agent: &Agent) -> (String, Duration, Option<Installed>) {
    let config = agent.config();
    let Some(feed) = config.feed_url() else {
        return (
            "no feed to check: set update_feed in the config or connect to a Bifrost".into(),
            CHECK_EVERY,
            None,
        );
    };
    let updater = match Updater::for_current_exe(&feed, PRODUCT, &path_in_archive(), config) {
        Ok(u) => u,
        Err(e) => return (format!("cannot update: {e}"), CHECK_EVERY, None),
    };
    let current = updater.current_version.clone();
    match updater.run(|| agent.transferring(QUIET)).await {
        Ok(Outcome::UpToDate) => (
            format!("Mover Agent {current} is up to date ({feed})"),
            CHECK_EVERY,
            None,
        ),
        Ok(Outcome::Managed) => (
            "installed by a package: it updates through the package manager".into(),
            CHECK_EVERY,
            None,
        ),
        Ok(Outcome::Waiting(v)) => (
            format!("version {v} waits for the transfer to end"),
            WAIT_POLL,
            None,
        ),
        Ok(Outcome::Installed(trial)) => {
            let version = trial.version().to_owned();
            (
                format!("version {version} installed; handing over to it"),
                CHECK_EVERY,
                Some(Installed { version, trial }),
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "update check");
            (format!("check failed: {e}"), CHECK_EVERY, None)
        }
    }
}

/// Starts the release on trial with this process's arguments and judges its trial; on
/// success stays its parent until it exits, relaying `shutdown` as a stop request.
pub async fn hand_over(
    installed: Installed,
    home: &AgentHome,
    mut shutdown: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> HandOver {
    let Installed { version, trial } = installed;
    let args = child_args(std::env::args_os().skip(1).collect());
    let endpoint = home.control_endpoint();
    let mut child = match tokio::process::Command::new(trial.candidate())
        .args(&args)
        .kill_on_drop(false)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return roll_back(trial, &format!("cannot start it: {e}")).await,
    };
    let deadline = tokio::time::Instant::now() + trial.remaining();
    let verdict = loop {
        tokio::select! {
            status = child.wait() => {
                break Err(match status {
                    Ok(s) => format!("it exited ({s}) before reconnecting"),
                    Err(e) => format!("cannot watch it: {e}"),
                });
            }
            _ = tokio::time::sleep_until(deadline) => {
                break Err(format!(
                    "it did not reconnect to Bifrost within {} s",
                    mover_agent::update::TRIAL.as_secs()
                ));
            }
            _ = shutdown.as_mut() => {
                // Stopped during the trial: stop the new one; it was not judged, so it may
                // be offered again (unless it had already proved itself and stays).
                let code = stop_child(&mut child, &endpoint).await;
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || trial.abandon()).await {
                    tracing::error!(error = %e, "ending the interrupted update");
                }
                return HandOver::Done(code);
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if online(&endpoint).await {
                    break Ok(());
                }
            }
        }
    };
    if let Err(why) = verdict {
        let _ = child.start_kill();
        let _ = child.wait().await;
        return roll_back(trial, &why).await;
    }
    // The release commits itself when it connects; doing it here too covers a release that
    // was killed between its report and its commit.
    match tokio::task::spawn_blocking(move || trial.commit()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "committing the update"),
        Err(e) => tracing::error!(error = %e, "committing the update"),
    }
    println!("Update: version {version} reconnected to Bifrost and took over");
    tracing::info!(%version, "the updated agent took over");
    tokio::select! {
        status = child.wait() => HandOver::Done(exit_code(status.ok())),
        _ = shutdown.as_mut() => HandOver::Done(stop_child(&mut child, &endpoint).await),
    }
}

/// The new version's arguments: this process's, without `--reset-key` (the key was made at
/// this start already). A Windows service's `service run` becomes `start`: only the service
/// manager can start a service's main, and this process stays the service, relaying its stop.
fn child_args(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    if args.len() >= 2 && args[0] == "service" && args[1] == "run" {
        args.splice(0..2, [std::ffi::OsString::from("start")]);
    }
    args.retain(|a| a != "--reset-key");
    args
}

/// Whether the agent behind `endpoint` is connected to Bifrost.
async fn online(endpoint: &str) -> bool {
    let Ok(mut client) = Client::connect(endpoint).await else {
        return false;
    };
    if client.send(Request::Status).await.is_err() {
        return false;
    }
    matches!(
        tokio::time::timeout(Duration::from_secs(2), client.next()).await,
        Ok(Ok(Some(Reply::Status { status, .. }))) if status.online
    )
}

/// Asks the new process to stop as `agent stop` would, killing it if it does not in 45 s
/// (its own drain takes at most 30).
async fn stop_child(child: &mut tokio::process::Child, endpoint: &str) -> ExitCode {
    if let Ok(mut client) = Client::connect(endpoint).await {
        let _ = client.send(Request::Stop).await;
    } else {
        let _ = child.start_kill();
    }
    match tokio::time::timeout(Duration::from_secs(45), child.wait()).await {
        Ok(status) => exit_code(status.ok()),
        Err(_) => {
            let _ = child.start_kill();
            exit_code(child.wait().await.ok())
        }
    }
}

fn exit_code(status: Option<std::process::ExitStatus>) -> ExitCode {
    match status.and_then(|s| s.code()) {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => ExitCode::FAILURE,
    }
}

/// Ends a failed trial: the old binary stays installed and the version is not installed again.
async fn roll_back(trial: Trial, why: &str) -> HandOver {
    let version = trial.version().to_owned();
    tracing::error!(%version, reason = why, "the updated agent failed its trial; rolling back");
    println!("Update: version {version} failed ({why}); rolling back");
    match tokio::task::spawn_blocking(move || trial.roll_back()).await {
        Ok(Ok(())) => println!("Update: previous version {} restored", mover_agent::VERSION),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "rollback");
            println!("Update: cannot restore the previous binary: {e}");
        }
        Err(e) => println!("Update: cannot restore the previous binary: {e}"),
    }
    HandOver::RolledBack
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<std::ffi::OsString> {
        v.iter().map(std::ffi::OsString::from).collect()
    }

    #[test]
    fn the_new_version_starts_like_this_one_without_a_new_key() {
        assert_eq!(
            child_args(os(&[
                "start",
                "--relay",
                "https://b",
                "--reset-key",
                "--auto-update"
            ])),
            os(&["start", "--relay", "https://b", "--auto-update"])
        );
        assert_eq!(child_args(os(&["service", "run"])), os(&["start"]));
    }
}
