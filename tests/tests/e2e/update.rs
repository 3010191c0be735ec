//! Self-update of the command-line agent end to end: a running agent (version A, the one under
//! test) updates from its Bifrost's feed to a version B built here with another version stamp,
//! refuses tampered, unsigned, wrongly signed, older and below-minimum releases, rolls back a
//! release that crashes at start, and never starts an update during a transfer.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use zipsign_api::SigningKey;

use crate::support::{bin, noise, wait_for, Agent, Bifrost, TestCa};

const TARGET: &str = "x86_64-unknown-linux-gnu";

/// The running version and the next one.
fn versions() -> (String, String) {
    let a = mover_agent_version();
    let mut parts: Vec<u64> = a.split('.').map(|p| p.parse().unwrap()).collect();
    parts[2] += 1;
    let b = parts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".");
    (a, b)
}

/// The version the agent under test reports (`agent -v`, second line).
fn mover_agent_version() -> String {
    let out = Command::new(bin("agent")).arg("-v").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned()
}

/// Builds the agent stamped with `version`, in a target folder of its own so the main build
/// stays cached; concurrent callers wait on cargo's lock and find it built.
fn stamped_agent(version: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let main_target = bin("agent")
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_owned();
    let target = PathBuf::from(format!("{}-stamped", main_target.display()));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "-q", "-p", "mover-agent-cli", "--bin", "agent"])
        .env("CARGO_TARGET_DIR", &target)
        .env("MOVER_VERSION", version)
        .status()
        .unwrap();
    assert!(status.success(), "building the agent stamped {version}");
    let exe = target.join("debug/agent");
    let out = Command::new(&exe).arg("-v").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(version));
    exe
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn archive_name(version: &str) -> String {
    format!("moveragent-{version}-{TARGET}.tar.gz")
}

/// A .tar.gz laid out like the release: `moveragent/agent`.
fn tar_gz(binary: &[u8]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(binary.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    tar.append_data(&mut header, "moveragent/agent", binary)
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

/// The archive signed by `signer` (none: unsigned), its signature bound to its file name;
/// each call writes a file of its own.
fn release(dir: &Path, version: &str, binary: &[u8], signer: Option<&SigningKey>) -> PathBuf {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = archive_name(version);
    let plain = tar_gz(binary);
    let bytes = match signer {
        None => plain,
        Some(k) => {
            let mut out = Cursor::new(Vec::new());
            zipsign_api::sign::copy_and_sign_tar(
                &mut Cursor::new(plain),
                &mut out,
                std::slice::from_ref(k),
                Some(name.as_bytes()),
            )
            .unwrap();
            out.into_inner()
        }
    };
    let out = dir.join("out").join(call.to_string());
    std::fs::create_dir_all(&out).unwrap();
    let path = out.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A running Bifrost and an agent of version A installed from an archive (not a package), with
/// auto-update on and the test's signing key trusted.
struct Setup {
    dir: tempfile::TempDir,
    _ca: TestCa,
    bifrost: Bifrost,
    agent: Agent,
    exe: PathBuf,
    home: PathBuf,
    args: Vec<String>,
    share: PathBuf,
    connector: String,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(dir.path());
        let bifrost = Bifrost::start(dir.path(), &ca);
        let install = dir.path().join("install/moveragent");
        std::fs::create_dir_all(&install).unwrap();
        let exe = install.join("agent");
        std::fs::copy(bin("agent"), &exe).unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        use base64::Engine;
        let public =
            base64::engine::general_purpose::STANDARD.encode(key(1).verifying_key().to_bytes());
        std::fs::write(
            home.join("config.toml"),
            format!("update_keys = [\"{public}\"]\n"),
        )
        .unwrap();
        let share = dir.path().join("share");
        std::fs::create_dir_all(&share).unwrap();
        let args: Vec<String> = [
            "--relay",
            &bifrost.url,
            "--relay-ca",
            ca.ca_file.to_str().unwrap(),
            "--share",
            share.to_str().unwrap(),
            "--auto-update",
        ]
        .map(str::to_owned)
        .into();
        let agent = start_installed(&exe, &home, &args);
        let connector = bifrost.authorize(&agent.key(), "updating")["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // The check at start finds nothing hosted yet.
        agent
            .stdout
            .wait_line("the first update check", |l| l.contains("is up to date"));
        Self {
            dir,
            _ca: ca,
            bifrost,
            agent,
            exe,
            home,
            args,
            share,
            connector,
        }
    }

    /// Starts the installed agent again, as a service manager or an admin would.
    fn restart(&mut self) {
        self.agent = start_installed(&self.exe, &self.home, &self.args);
    }

    /// `bifrost releases add` into the running Bifrost's data folder.
    fn publish(&self, archive: &Path, minimum: Option<&str>) {
        let mut cmd = Command::new(bin("bifrost"));
        cmd.args(["releases", "add", "--data"])
            .arg(&self.bifrost.data);
        if let Some(m) = minimum {
            cmd.args(["--minimum", m]);
        }
        let out = cmd.arg(archive).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `agent update`'s answer.
    fn update(&self) -> String {
        let out = self.agent.cli(&["update"]);
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }

    fn installed(&self) -> Vec<u8> {
        std::fs::read(&self.exe).unwrap()
    }

    /// The version Bifrost lists for the agent.
    fn listed_version(&self) -> String {
        self.bifrost
            .connectors()
            .into_iter()
            .find(|c| c["id"] == self.connector.as_str())
            .and_then(|c| c["version"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    fn wait_listed(&self, version: &str, timeout: Duration) {
        wait_for(
            timeout,
            &format!("Bifrost to list version {version}"),
            || (self.listed_version() == version && self.online()).then_some(()),
        );
    }

    fn online(&self) -> bool {
        self.agent.status().contains("Status: online")
    }

    /// Stops the agent (and the updated child it relays to) and waits for both.
    fn stop(mut self) {
        let out = self.agent.cli(&["stop"]);
        assert!(out.status.success(), "{out:?}");
        self.agent.wait_exit_within(Duration::from_secs(60));
    }
}

fn start_installed(exe: &Path, home: &Path, args: &[String]) -> Agent {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Agent::start_cmd(Command::new(exe), home, &args, &[])
}

impl Drop for Setup {
    fn drop(&mut self) {
        // A failed test must not leave an updated agent running, installed or on trial.
        for exe in [self.exe.clone(), self.exe.with_file_name(".agent.next")] {
            let _ = Command::new("pkill")
                .arg("-KILL")
                .arg("-f")
                .arg(exe.to_str().unwrap())
                .status();
        }
    }
}

#[test]
fn updates_to_a_signed_newer_version_and_refuses_everything_else() {
    let (a, b) = versions();
    let new_binary = std::fs::read(stamped_agent(&b)).unwrap();
    let s = Setup::new();
    let original = s.installed();
    s.wait_listed(&a, Duration::from_secs(20));
    let dir = s.dir.path();

    // Older than the running version: nothing to do.
    s.publish(&release(dir, "0.0.1", &new_binary, Some(&key(1))), None);
    let said = s.update();
    assert!(said.contains("is up to date"), "{said}");

    let mut refusals = vec![];
    // Tampered after signing.
    let tampered = release(dir, &b, &new_binary, Some(&key(1)));
    let mut bytes = std::fs::read(&tampered).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&tampered, bytes).unwrap();
    refusals.push(("tampered", tampered, None));
    refusals.push((
        "wrong key",
        release(dir, &b, &new_binary, Some(&key(2))),
        None,
    ));
    refusals.push(("unsigned", release(dir, &b, &new_binary, None), None));
    let above_b = format!("{b}0");
    refusals.push((
        "below the minimum",
        release(dir, &b, &new_binary, Some(&key(1))),
        Some(above_b.as_str()),
    ));
    for (what, archive, minimum) in refusals {
        s.publish(&archive, minimum);
        let said = s.update();
        assert!(said.contains("refused"), "{what}: {said}");
        if what == "below the minimum" {
            assert!(said.contains("minimum"), "{said}");
        } else {
            assert!(said.contains("signature"), "{what}: {said}");
        }
        assert!(s.installed() == original, "{what}: the binary changed");
        assert_eq!(s.listed_version(), a, "{what}");
    }

    // Signed, newer and at least the minimum: installed, restarted, reconnected as B.
    s.publish(&release(dir, &b, &new_binary, Some(&key(1))), Some(&a));
    let said = s.update();
    assert!(said.contains(&format!("version {b} installed")), "{said}");
    s.agent
        .stdout
        .wait_line("the hand-over", |l| l.contains("took over"));
    s.wait_listed(&b, Duration::from_secs(30));
    assert!(s.installed() == new_binary);
    let previous = s.exe.with_file_name(".agent.previous");
    assert!(std::fs::read(previous).unwrap() == original);
    let out = Command::new(&s.exe).arg("-v").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&b));
    // The new version answers the CLI: it is the one serving.
    assert!(s
        .update()
        .contains(&format!("Mover Agent {b} is up to date")));
    s.stop();
}

#[test]
fn a_release_that_crashes_at_start_is_rolled_back() {
    let (a, b) = versions();
    let s = Setup::new();
    let original = s.installed();
    s.wait_listed(&a, Duration::from_secs(20));
    let crashing = b"#!/bin/sh\necho 'this build is broken' >&2\nexit 3\n";
    s.publish(&release(s.dir.path(), &b, crashing, Some(&key(1))), None);
    let started = Instant::now();
    let said = s.update();
    assert!(said.contains(&format!("version {b} installed")), "{said}");
    s.agent.stdout.wait_line("the rollback", |l| {
        l.contains("previous version") && l.contains("restored")
    });
    assert!(s.installed() == original, "the previous binary is back");
    // This version serves again, and Bifrost sees it.
    s.wait_listed(&a, Duration::from_secs(30));
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "rolled back after {:?}",
        started.elapsed()
    );
    // A rolled-back version is not installed again.
    let said = s.update();
    assert!(said.contains("is up to date"), "{said}");
    assert!(s.installed() == original);
    s.stop();
}

#[test]
fn no_update_starts_during_a_transfer() {
    let (_, b) = versions();
    let new_binary = std::fs::read(stamped_agent(&b)).unwrap();
    let s = Setup::new();
    let original = s.installed();
    // 6 MiB at 1 MiB/s: a transfer of about six seconds.
    std::fs::write(s.share.join("big"), noise(6 << 20, 7)).unwrap();
    let dest = s.dir.path().join("dest");
    let (status, job) = s.bifrost.api(
        "POST",
        "/api/v1/jobs",
        Some(json!({
            "connector": s.connector,
            "sources": [s.share.join("big")],
            "destination": {"kind": "folder", "path": dest},
            "bandwidth_limit": 1 << 20,
        })),
    );
    assert_eq!(status, 201, "{job}");
    let job = job["id"].as_str().unwrap().to_owned();
    wait_for(Duration::from_secs(20), "the copy to start", || {
        (s.bifrost.job(&job)["bytes_done"].as_u64().unwrap_or(0) > 0).then_some(())
    });
    s.publish(&release(s.dir.path(), &b, &new_binary, Some(&key(1))), None);
    let said = s.update();
    assert!(
        said.contains(&format!("version {b} waits for the transfer to end")),
        "{said}"
    );
    let report = s.bifrost.wait_job(&job, Duration::from_secs(60));
    assert_eq!(report["state"], "completed", "{report}");
    assert_eq!(report["files_done"], 1, "{report}");
    // Nothing was replaced while the file was copied.
    let log = s.agent.stdout.all();
    assert!(!log.iter().any(|l| l.contains("installed")), "{log:?}");
    assert!(s.installed() == original);
    // Once the agent has been quiet for a while the waiting update goes in.
    s.agent.stdout.wait_line_within(
        "the update after the transfer",
        Duration::from_secs(90),
        |l| l.contains("took over"),
    );
    s.wait_listed(&b, Duration::from_secs(30));
    s.stop();
}

/// `kill -9` of the agent while a release that crashes at start is on trial, and at the
/// moment the release lands beside the binary: each time the next start runs the old version,
/// which serves Bifrost again and never installs that release again. (Before the swap became
/// trial-first, the release was already installed when the trial began, and killing the
/// judging parent left only the crashing binary to start.)
#[test]
fn killed_during_an_update_the_old_version_runs_again() {
    let (a, b) = versions();
    let c = {
        let mut parts: Vec<u64> = b.split('.').map(|p| p.parse().unwrap()).collect();
        parts[2] += 1;
        parts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(".")
    };
    let mut s = Setup::new();
    let original = s.installed();
    s.wait_listed(&a, Duration::from_secs(20));
    let next = s.exe.with_file_name(".agent.next");
    let trial = s.exe.with_file_name(".agent.update-trial");
    // Crashes 3 s after it starts: it is still on trial when its parent is killed.
    let crashing = b"#!/bin/sh\nsleep 3\necho 'this build is broken' >&2\nexit 3\n";

    // 1. Killed while the release is on trial.
    s.publish(&release(s.dir.path(), &b, crashing, Some(&key(1))), None);
    let said = s.update();
    assert!(said.contains(&format!("version {b} installed")), "{said}");
    s.agent.kill();
    assert!(
        s.installed() == original,
        "the installed binary was replaced"
    );
    assert!(trial.exists() && next.exists(), "the release is on trial");
    s.restart();
    s.agent.stdout.wait_line("the recovery", |l| {
        l.contains(&format!("version {b} did not finish its trial"))
    });
    assert!(s.installed() == original);
    assert!(!next.exists() && !trial.exists());
    s.wait_listed(&a, Duration::from_secs(30));
    let said = s.update();
    assert!(
        said.contains("is up to date"),
        "a rolled-back release came back: {said}"
    );

    // 2. Stopped (SIGSTOP) the instant the release appears beside the binary, then killed.
    s.publish(&release(s.dir.path(), &c, crashing, Some(&key(1))), None);
    let pid = s.agent.pid().to_string();
    let home = s.home.clone();
    let asking = std::thread::spawn(move || crate::support::cli(&home, &["update"]));
    wait_for(Duration::from_secs(30), "the release to land", || {
        next.exists().then_some(())
    });
    let signal = |sig: &str| {
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    };
    signal("-STOP");
    signal("-KILL");
    s.agent.kill();
    let _ = asking.join();
    assert!(
        s.installed() == original,
        "the installed binary was replaced"
    );
    s.restart();
    // Killed before its trial was written, the release was never tried: the check at start
    // may offer it again, and it fails its trial under a living parent this time.
    s.agent.stdout.wait_line_within(
        "the first check after the restart",
        Duration::from_secs(90),
        |l| l.contains("is up to date") || l.contains("restored"),
    );
    s.wait_listed(&a, Duration::from_secs(30));
    assert!(s.installed() == original);
    assert!(!next.exists() && !trial.exists());
    s.stop();
}
