//! A destination that fills up mid-file: the job pauses saying the disk is full, nothing
//! partial sits at a final name, and once space is freed, resume completes every file.
//!
//! Needs root to mount a small tmpfs; skips (and passes) with a message where it cannot.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{noise, wait_for, Agent, Bifrost, TestCa, World};

/// A size-limited tmpfs mounted for one test, unmounted when dropped (lazily if still busy).
struct Mount(PathBuf);

impl Mount {
    /// Mounts a tmpfs of `size` (as `mount` reads it: `8m`) at `at`, or says why it cannot.
    fn tmpfs(at: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Self(at.to_owned()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            Command::new("umount")
                .args(args)
                .arg(&self.0)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if !quiet(&[]) {
            quiet(&["-l"]);
        }
    }
}

/// Files of the destination tree under `root`, relative, with their content's BLAKE3.
fn tree(root: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = e.path();
            if e.file_type().unwrap().is_dir() {
                dirs.push(path);
            } else {
                let data = std::fs::read(&path).unwrap();
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                out.push((rel, blake3::hash(&data).to_hex().to_string()));
            }
        }
    }
    out.sort();
    out
}

fn is_temporary(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.starts_with('.') && name.ends_with(".mover-part")
}

#[test]
fn a_full_destination_pauses_the_job_and_resume_completes_it() {
    let w = World::new();
    let mnt = w.dir.path().join("small-disk");
    let _mount = match Mount::tmpfs(&mnt, "8m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root): {why}");
            return;
        }
    };
    // 6.5 MiB taken by something else leaves ~1.5 MiB: the file streamed on its own (3 MiB)
    // and the batch of small ones (1.8 MiB, written after the big one is spawned) both fill it.
    let filler = mnt.join("filler");
    std::fs::write(&filler, noise(13 << 19, 1)).unwrap();
    let src = w.share.join("full");
    std::fs::create_dir_all(src.join("small")).unwrap();
    std::fs::write(src.join("big.bin"), noise(3 << 20, 2)).unwrap();
    for i in 0..6 {
        let name = format!("small/s{i}.bin");
        std::fs::write(src.join(name), noise(300 << 10, 10 + 2 * i)).unwrap();
    }
    let want = tree(&src);
    let dest = mnt.join("dest");
    let job = w
        .bifrost
        .create_job(&w.connector, &[&w.src("full")], &dest, Some(2));

    let paused = wait_for(Duration::from_secs(60), "the job to pause", || {
        let j = w.bifrost.job(&job);
        assert!(
            !["completed", "completed_with_errors", "failed"]
                .contains(&j["state"].as_str().unwrap()),
            "the job ended instead of pausing: {j}"
        );
        (j["state"] == "paused").then_some(j)
    });
    let reason = paused["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("disk full"), "{paused}");
    let files = w.bifrost.files(&job);
    let full: Vec<&Value> = files.iter().filter(|f| f["status"] == "failed").collect();
    assert!(
        !full.is_empty(),
        "no file says it met the full disk: {files:#?}"
    );
    for f in &full {
        let r = f["reason"].as_str().unwrap_or_default();
        assert!(r.starts_with("disk full"), "{f}");
    }
    // Both ways a file is written met it: streamed alone, and in a batch.
    let failed = |name: &str| {
        full.iter()
            .any(|f| f["destination"].as_str().unwrap_or_default().contains(name))
    };
    assert!(failed("big.bin"), "{files:#?}");
    assert!(failed("small/s"), "{files:#?}");
    // Whatever sits at a final name is a whole, verified copy; the rest are temporaries.
    let at_pause = tree(&dest);
    for (rel, hash) in &at_pause {
        if is_temporary(rel) {
            continue;
        }
        let source = want
            .iter()
            .find(|(r, _)| r == rel.strip_prefix("full/").unwrap());
        assert_eq!(
            source.map(|s| &s.1),
            Some(hash),
            "{rel} is partial at its final name"
        );
    }
    eprintln!("at the pause: {at_pause:?}");

    std::fs::remove_file(&filler).unwrap();
    let (status, body) = w
        .bifrost
        .api("POST", &format!("/api/v1/jobs/{job}/resume"), None);
    assert_eq!(status, 200, "{body}");
    let done = w.bifrost.wait_job(&job, Duration::from_secs(60));
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["files_failed"], 0, "{done}");
    let got: Vec<(String, String)> = tree(&dest.join("full"));
    assert_eq!(got, want, "the destination differs from the source");
    for f in w.bifrost.files(&job) {
        assert_eq!(f["status"], "copied", "{f}");
        let rel = f["destination"].as_str().unwrap_or_default();
        if let Some((_, hash)) = want.iter().find(|(r, _)| rel.ends_with(&format!("/{r}"))) {
            assert_eq!(f["blake3"].as_str(), Some(hash.as_str()), "{f}");
        }
    }
}

/// A used-up quota (EDQUOT, injected into Bifrost's writes of one file by `strace`: this
/// kernel has no quota support) pauses the job as a full disk does, and resume completes it.
#[test]
fn a_used_up_quota_pauses_the_job_like_a_full_disk() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("SKIPPED: strace is not installed (scripts/setup installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let data_dir = dir.path().join("bifrost-data");
    let dest = dir.path().join("dest");
    let partial = dest.join("q/.big.bin.mover-part");
    let mut strace = Command::new("strace");
    // Only the writes of this file's temporary fail, from the third on.
    strace
        .args([
            "-f",
            "-qq",
            "-e",
            "signal=none",
            "-e",
            "trace=write",
            "-o",
            "/dev/null",
        ])
        .arg("-P")
        .arg(&partial)
        .args(["-e", "inject=write:error=EDQUOT:when=3+"]);
    let mut bifrost =
        Bifrost::spawn_wrapped(strace, &data_dir, &crate::support::stable_addr(), Some(&ca));
    let share = dir.path().join("share");
    std::fs::create_dir_all(share.join("q")).unwrap();
    let content = noise(3 << 20, 5);
    std::fs::write(share.join("q/big.bin"), &content).unwrap();
    let agent = Agent::start_for(&dir.path().join("home"), &bifrost, &ca, &share);
    bifrost.wait_connector("the agent to wait", |c| c["state"] == "waiting");
    let connector = bifrost.authorize(&agent.key(), "fs1")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    agent.wait_status("authorized as fs1", Duration::from_secs(10));
    let source = share.join("q");
    let job = bifrost.create_job(&connector, &[source.to_str().unwrap()], &dest, Some(1));
    let paused = wait_for(Duration::from_secs(60), "the job to pause", || {
        let j = bifrost.job(&job);
        assert!(
            !["completed", "completed_with_errors", "failed"]
                .contains(&j["state"].as_str().unwrap()),
            "the job ended instead of pausing: {j}"
        );
        (j["state"] == "paused").then_some(j)
    });
    assert!(
        paused["reason"].as_str().unwrap().contains("disk full"),
        "{paused}"
    );
    let files = bifrost.files(&job);
    let reason = files[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("disk full") && reason.contains("quota"),
        "{files:#?}"
    );
    assert!(
        !dest.join("q/big.bin").exists(),
        "a partial file sits at its final name"
    );

    // The quota raised: Bifrost runs again without the injected errors.
    let addr = bifrost.addr.clone();
    bifrost.kill();
    bifrost = wait_for(Duration::from_secs(10), "Bifrost to start again", || {
        std::panic::catch_unwind(|| Bifrost::spawn(&data_dir, &addr, Some(&ca))).ok()
    });
    agent.wait_status("authorized as fs1", Duration::from_secs(30));
    let (status, body) = bifrost.api("POST", &format!("/api/v1/jobs/{job}/resume"), None);
    assert_eq!(status, 200, "{body}");
    let done = bifrost.wait_job(&job, Duration::from_secs(60));
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(std::fs::read(dest.join("q/big.bin")).unwrap(), content);
    assert_eq!(
        bifrost.files(&job)[0]["blake3"],
        blake3::hash(&content).to_hex().as_str()
    );
}
