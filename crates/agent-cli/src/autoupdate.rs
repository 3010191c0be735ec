//! Self-update of the command-line agent and the service (opt-in `--auto-update`): checks the
//! feed at start and every 6 hours, never during a transfer, installs a signed newer release,
//! then hands over to it and rolls back if it has not reconnected to Bifrost within 60 s.
//!
//! The hand-over keeps the old process as the new one's parent: the known-good binary is the
//! one that judges the trial, and the process a service manager or a terminal watches stays
//! the same. After a successful trial the old process only relays a stop to the new one.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use mover_agent::control::{Client, Reply, Request};
use mover_agent::update::{previous_path, Outcome, Updater, CHECK_EVERY};
use mover_agent::{Agent, AgentHome};

/// The product name in the release archives (`moveragent-VERSION-TARGET.tar.gz`).
pub const PRODUCT: &str = "moveragent";
/// How long the new version has to reconnect to Bifrost before it is rolled back.
pub const TRIAL: Duration = Duration::from_secs(60);
/// File content moved this recently counts as a transfer still running.
const QUIET: Duration = Duration::from_secs(20);
/// How often to look again while an update waits for a transfer to end.
const WAIT_POLL: Duration = Duration::from_secs(15);
/// How long a check at start waits for the tunnel (the feed is usually on Bifrost).
const START_WAIT: Duration = Duration::from_secs(60);
/// Versions rolled back here, one per line, never installed again.
const ROLLED_BACK_FILE: &str = "rolled-back-versions";

/// The binary's path inside a release archive, laid out like the original's zip.
pub fn path_in_archive() -> String {
    format!("moveragent/agent{}", std::env::consts::EXE_SUFFIX)
}

/// A release installed in place of the running binary.
#[derive(Debug, Clone)]
pub struct Installed {
    /// Its version.
    pub version: String,
    /// Where it now is (the previous binary is beside it).
    pub install_path: PathBuf,
}

/// How a hand-over ended.
pub enum HandOver {
    /// The new version ran and has exited (or was stopped) with this code.
    Done(ExitCode),
    /// The new version failed its trial and the previous binary is back in place.
    RolledBack,
}

/// Versions rolled back in this home.
pub fn rolled_back(home: &AgentHome) -> Vec<String> {
    std::fs::read_to_string(home.dir().join(ROLLED_BACK_FILE))
        .map(|s| {
            s.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn remember_rollback(home: &AgentHome, version: &str) {
    let mut versions = rolled_back(home);
    versions.push(version.to_owned());
    let path = home.dir().join(ROLLED_BACK_FILE);
    if let Err(e) = std::fs::write(&path, versions.join("\n") + "\n") {
        tracing::warn!(error = %e, path = %path.display(), "cannot record the rolled-back version");
    }
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
    let mut updater = match Updater::for_current_exe(&feed, PRODUCT, &path_in_archive(), config) {
        Ok(u) => u,
        Err(e) => return (format!("cannot update: {e}"), CHECK_EVERY, None),
    };
    updater.skip_versions = rolled_back(agent.home());
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
        Ok(Outcome::Installed(version)) => (
            format!("version {version} installed; handing over to it"),
            CHECK_EVERY,
            Some(Installed {
                version,
                install_path: updater.install_path.clone(),
            }),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "update check");
            (format!("check failed: {e}"), CHECK_EVERY, None)
        }
    }
}

/// Starts the installed release with this process's arguments and judges its trial; on
/// success stays its parent until it exits, relaying `shutdown` as a stop request.
pub async fn hand_over(
    installed: &Installed,
    home: &AgentHome,
    mut shutdown: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> HandOver {
    let args = child_args(std::env::args_os().skip(1).collect());
    let version = &installed.version;
    let endpoint = home.control_endpoint();
    let mut child = match tokio::process::Command::new(&installed.install_path)
        .args(&args)
        .kill_on_drop(false)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return roll_back(installed, home, &format!("cannot start it: {e}")),
    };
    let deadline = tokio::time::Instant::now() + TRIAL;
    let verdict = loop {
        tokio::select! {
            status = child.wait() => {
                break Err(match status {
                    Ok(s) => format!("it exited ({s}) before reconnecting"),
                    Err(e) => format!("cannot watch it: {e}"),
                });
            }
            _ = tokio::time::sleep_until(deadline) => {
                break Err(format!("it did not reconnect to Bifrost within {} s", TRIAL.as_secs()));
            }
            _ = shutdown.as_mut() => {
                // Stopped during the trial: stop the new one and leave it installed.
                return HandOver::Done(stop_child(&mut child, &endpoint).await);
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
        return roll_back(installed, home, &why);
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

/// Puts the previous binary back and remembers not to install this version again.
fn roll_back(installed: &Installed, home: &AgentHome, why: &str) -> HandOver {
    let version = &installed.version;
    let previous = previous_path(&installed.install_path);
    tracing::error!(%version, reason = why, "the updated agent failed its trial; rolling back");
    println!("Update: version {version} failed ({why}); rolling back");
    match restore(&previous, &installed.install_path) {
        Ok(()) => println!("Update: previous version {} restored", mover_agent::VERSION),
        Err(e) => {
            tracing::error!(error = %e, "rollback");
            println!("Update: cannot restore the previous binary: {e}");
        }
    }
    remember_rollback(home, version);
    HandOver::RolledBack
}

fn restore(previous: &Path, install_path: &Path) -> std::io::Result<()> {
    if !previous.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is missing", previous.display()),
        ));
    }
    // Windows cannot rename over a file; elsewhere the rename replaces it atomically.
    if cfg!(windows) {
        let _ = std::fs::remove_file(install_path);
    }
    std::fs::rename(previous, install_path)
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
