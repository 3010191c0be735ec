//! `kill -9` at every step of an update's install, trial, commit and rollback: the test binary
//! re-runs itself as a child that drives the library's steps and parks at the chosen one, the
//! test kills it there, and a fresh process then does what every start of the binary does
//! (`update::recover`). With a release that crashes at start the old binary always runs
//! again; a release that had proved itself stays installed.
//!
//! The child's role is chosen by `MOVER_CRASH_TEST_ROLE`, read only by this test file: the
//! product has no test mode, the steps are the same calls the CLI and the desktop app make.
#![allow(clippy::unwrap_used)]
#![cfg(unix)]

use std::io::{BufRead, BufReader, Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use mover_agent::update::{asset_name, recover, Offer, Paths, Recovered, Step, Updater};
use mover_agent::Config;
use zipsign_api::SigningKey;

const ROLE: &str = "MOVER_CRASH_TEST_ROLE";
const TARGET: &str = "x86_64-unknown-linux-gnu";
/// The CLI agent's name; the desktop app's tests use `mover-agent-desktop` (see [`product`]).
const PRODUCT: &str = "agent";
const DESKTOP: &str = "mover-agent-desktop";

/// The binary's name in this process (the child learns it from its install path).
fn product(install: &Path) -> String {
    install.file_name().unwrap().to_string_lossy().into_owned()
}
const OLD: &[u8] = b"#!/bin/sh\necho old version\n";
/// A release that crashes at start.
const CRASHING: &[u8] = b"#!/bin/sh\necho 'this build is broken' >&2\nexit 3\n";
const HEALTHY: &[u8] = b"#!/bin/sh\necho new version\n";

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// A release archive signed for its file name, as the update tests build them.
fn signed(product: &str, version: &str, binary: &[u8]) -> (Offer, Vec<u8>) {
    let name = asset_name(product, version, TARGET);
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(binary.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    tar.append_data(&mut header, product, binary).unwrap();
    let plain = tar.into_inner().unwrap().finish().unwrap();
    let mut out = Cursor::new(Vec::new());
    zipsign_api::sign::copy_and_sign_tar(
        &mut Cursor::new(plain),
        &mut out,
        &[signing_key()],
        Some(name.as_bytes()),
    )
    .unwrap();
    let offer = Offer {
        version: version.into(),
        asset_name: name.clone(),
        url: name,
    };
    (offer, out.into_inner())
}

fn updater(install: &Path) -> Updater {
    Updater {
        feed_url: "http://127.0.0.1:9/feed.json".into(),
        product: product(install),
        target: TARGET.into(),
        current_version: "0.1.0".into(),
        install_path: install.to_owned(),
        path_in_archive: product(install),
        keys: vec![signing_key().verifying_key().to_bytes()],
        config: Config::default(),
        skip_versions: vec![],
    }
}

/// In the child: says it reached `point`, and parks there forever if it is the one to die at.
fn reached(point: &str) {
    let stop_at = std::env::var("MOVER_CRASH_TEST_AT").unwrap_or_default();
    println!("AT {point}");
    std::io::stdout().flush().unwrap();
    if point == stop_at {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    }
}

/// The old process's part, as `agent`'s hand-over does it: install on trial, start the
/// release from `.next`, watch it; it crashes, so roll back. With `healthy`, the release is
/// judged healthy and committed instead.
fn installer(install: &Path, healthy: bool) {
    let (offer, archive) = signed(
        &product(install),
        "0.2.0",
        if healthy { HEALTHY } else { CRASHING },
    );
    let observe = &mut |s: Step| reached(&format!("{s:?}"));
    let trial = updater(install)
        .install_observed(&offer, &archive, observe)
        .unwrap();
    let mut child = Command::new(trial.candidate())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    reached("CandidateStarted");
    let status = child.wait().unwrap();
    reached("CandidateExited");
    if healthy {
        assert!(status.success());
        trial.commit_observed(observe).unwrap();
    } else {
        assert_eq!(status.code(), Some(3));
        trial.roll_back_observed(observe).unwrap();
    }
    reached("Done");
}

/// The child's entry: does nothing in a normal test run.
#[test]
fn child_process() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let install = PathBuf::from(std::env::var("MOVER_CRASH_TEST_INSTALL").unwrap());
    match role.as_str() {
        "crashing" => installer(&install, false),
        "healthy" => installer(&install, true),
        "desktop" => {
            // The desktop app's restart: install on trial, start the release, quit (the app
            // cannot stay: the release is the single instance now). The release crashes.
            let (offer, archive) = signed(&product(&install), "0.2.0", CRASHING);
            let trial = updater(&install).install(&offer, &archive).unwrap();
            // As the app does: the release outlives this process.
            Command::new(trial.candidate()).spawn().map(drop).unwrap();
            reached("Launched");
        }
        "candidate" => {
            // A release on trial that has started and joined its trial (then hangs).
            let Recovered::Candidate(_trial) = recover(&Paths::of(&install).next()).unwrap() else {
                panic!("not a candidate");
            };
            reached("Joined");
        }
        other => panic!("unknown role {other}"),
    }
}

struct Parked {
    child: Child,
}

impl Parked {
    /// Runs this test binary's child in `role`, and waits for it to park at `at`.
    fn start(role: &str, install: &Path, at: &str) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, role)
            .env("MOVER_CRASH_TEST_INSTALL", install)
            .env("MOVER_CRASH_TEST_AT", at)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("the child ended before {at}"))
                .unwrap();
            // libtest may print `test child_process ... ` before the child's first line.
            if line.ends_with(&format!("AT {at}")) {
                break;
            }
        }
        Self { child }
    }

    /// SIGKILL: no destructor, no cleanup, as a power cut or an OOM kill.
    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

fn setup(product: &str) -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let install = dir.path().join(product);
    std::fs::write(&install, OLD).unwrap();
    std::fs::set_permissions(&install, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, install)
}

/// What runs when the installed binary is started.
fn run(install: &Path) -> String {
    let out = Command::new(install).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Names in the install folder, apart from the binary, `.previous` and the lock file.
fn leftovers(install: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(install.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            let p = product(install);
            ![
                p.clone(),
                format!(".{p}.previous"),
                format!(".{p}.update-lock"),
                format!(".{p}.rolled-back"),
            ]
            .contains(n)
        })
        .collect();
    names.sort();
    names
}

const CRASHING_STEPS: &[&str] = &[
    "Locked",
    "Staged",
    "PreviousKept",
    "TrialWritten",
    "CandidateStarted",
    "CandidateExited",
    "Restored",
    "Recorded",
    "Discarded",
    "Finished",
    "Done",
];

#[test]
fn a_crashing_release_killed_at_any_step_leaves_the_old_version_running() {
    for (name, at) in [PRODUCT, DESKTOP]
        .iter()
        .flat_map(|p| CRASHING_STEPS.iter().map(move |s| (*p, *s)))
    {
        let (_dir, install) = setup(name);
        Parked::start("crashing", &install, at).kill9();
        // The next process of this binary, whichever it is, runs this first.
        let recovered = recover(&install).unwrap();
        assert!(
            !matches!(recovered, Recovered::Busy | Recovered::Completed(_)),
            "{at}: {recovered:?}"
        );
        assert_eq!(run(&install), "old version", "{name} killed after {at}");
        assert!(
            leftovers(&install).is_empty(),
            "{at}: {:?}",
            leftovers(&install)
        );
        // Once the release has been tried it is never offered again.
        let tried = CRASHING_STEPS.iter().position(|s| *s == at)
            >= CRASHING_STEPS.iter().position(|s| *s == "TrialWritten");
        let skipped = mover_agent::update::trial::rolled_back(&Paths::of(&install));
        assert_eq!(skipped.contains(&"0.2.0".to_owned()), tried, "{at}");
        // Recovery is done: a second start finds nothing.
        assert!(
            matches!(recover(&install).unwrap(), Recovered::Nothing),
            "{at}"
        );
    }
}

#[test]
fn a_release_killed_before_its_commit_is_rolled_back_and_after_it_stays() {
    for (at, want) in [
        ("TrialWritten", "old version"),
        ("CandidateExited", "old version"),
        ("Promoted", "new version"),
        ("Finished", "new version"),
    ] {
        let (_dir, install) = setup(PRODUCT);
        Parked::start("healthy", &install, at).kill9();
        recover(&install).unwrap();
        assert_eq!(run(&install), want, "killed after {at}");
        assert!(
            leftovers(&install).is_empty(),
            "{at}: {:?}",
            leftovers(&install)
        );
        // Whatever happened, the binary that was replaced is kept.
        if want == "new version" {
            let previous = std::fs::read(Paths::of(&install).previous()).unwrap();
            assert_eq!(previous, OLD);
        }
    }
}

#[test]
fn a_live_trial_is_left_alone_until_its_last_party_dies() {
    let (_dir, install) = setup(PRODUCT);
    // The installer dies right after writing the trial; the release joins it and hangs.
    Parked::start("crashing", &install, "TrialWritten").kill9();
    let candidate = Parked::start("candidate", &install, "Joined");
    assert!(matches!(recover(&install).unwrap(), Recovered::Busy));
    assert!(Paths::of(&install).next().exists());
    candidate.kill9();
    assert!(matches!(
        recover(&install).unwrap(),
        Recovered::RolledBack(v) if v == "0.2.0"
    ));
    assert_eq!(run(&install), "old version");
}

#[test]
fn the_desktop_apps_next_launch_rolls_back_a_release_that_crashed_at_start() {
    let (_dir, install) = setup(DESKTOP);
    // The old app quits after launching the release, which crashes: nobody judges it.
    Parked::start("desktop", &install, "Launched").kill9();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        run(&install),
        "old version",
        "the installed app is untouched"
    );
    // The next launch (at login, or by hand) runs this first.
    assert!(matches!(
        recover(&install).unwrap(),
        Recovered::RolledBack(v) if v == "0.2.0"
    ));
    assert!(leftovers(&install).is_empty(), "{:?}", leftovers(&install));
}

/// The judge both front ends use: an agent that never reaches Bifrost by the deadline has its
/// release rolled back; the old binary stays installed.
#[tokio::test]
async fn prove_rolls_back_a_release_whose_agent_never_connects() {
    let (dir, install) = setup(PRODUCT);
    let (offer, archive) = signed(PRODUCT, "0.2.0", HEALTHY);
    let trial = updater(&install).install(&offer, &archive).unwrap();
    // A trial with a deadline one second away, as a release started late in its trial has.
    let mut state = trial.state().clone();
    let paths = trial.paths().clone();
    drop(trial);
    assert!(matches!(
        recover(&install).unwrap(),
        Recovered::RolledBack(_)
    ));
    let staged = dir.path().join("staged");
    std::fs::write(&staged, HEALTHY).unwrap();
    state.deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let party = mover_agent::update::trial::join(&paths).unwrap();
    let trial = mover_agent::update::Trial::begin(party, &staged, state).unwrap();
    let home = mover_agent::AgentHome::at(dir.path().join("home"));
    home.create().unwrap();
    let key = mover_agent::prepare_key(&home, false).unwrap();
    // No relay configured: it stays offline.
    let agent = mover_agent::Agent::start(home, key, Config::default()).unwrap();
    let verdict = mover_agent::update::prove(&agent, trial).await.unwrap();
    assert_eq!(
        verdict,
        mover_agent::update::Verdict::RolledBack("0.2.0".into())
    );
    assert_eq!(run(&install), "old version");
    assert!(!paths.next().exists() && !paths.trial().exists());
    agent.stop().await;
}
