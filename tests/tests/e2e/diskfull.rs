//! A destination that fills up mid-file: the job pauses saying the disk is full, nothing
//! partial sits at a final name, and once space is freed, resume completes every file.
//!
//! Needs root to mount a small tmpfs; skips (and passes) with a message where it cannot.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{noise, wait_for, World};

/// A size-limited tmpfs mounted for one test, unmounted when dropped (lazily if still busy).
struct Mount(PathBuf);

impl Mount {
    /// Mounts a tmpfs of `size` (as `mount` reads it: `8m`) at `at`, or says why it cannot.
    fn tmpfs(at: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"])
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
                let rel = path.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
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
    // 4 MiB taken by something else, so ~7.8 MiB of sources cannot fit: a file streamed in one
    // piece (over 1 MiB) and batched small ones.
    let filler = mnt.join("filler");
    std::fs::write(&filler, noise(4 << 20, 1)).unwrap();
    let src = w.share.join("full");
    std::fs::create_dir_all(src.join("small")).unwrap();
    std::fs::write(src.join("a.bin"), noise(3 << 20, 2)).unwrap();
    std::fs::write(src.join("b.bin"), noise(3 << 20, 3)).unwrap();
    for i in 0..6 {
        let name = format!("small/s{i}.bin");
        std::fs::write(src.join(name), noise(300 << 10, 10 + i)).unwrap();
    }
    let want = tree(&src);
    let dest = mnt.join("dest");
    let job = w
        .bifrost
        .create_job(&w.connector, &[&w.src("full")], &dest, Some(2));

    let paused = wait_for(Duration::from_secs(60), "the job to pause", || {
        let j = w.bifrost.job(&job);
        assert!(
            !["completed", "completed_with_errors", "failed"].contains(&j["state"].as_str().unwrap()),
            "the job ended instead of pausing: {j}"
        );
        (j["state"] == "paused").then_some(j)
    });
    let reason = paused["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("disk full"), "{paused}");
    let files = w.bifrost.files(&job);
    let full: Vec<&Value> = files
        .iter()
        .filter(|f| f["status"] == "failed")
        .collect();
    assert!(!full.is_empty(), "no file says it met the full disk: {files:#?}");
    for f in &full {
        let r = f["reason"].as_str().unwrap_or_default();
        assert!(r.starts_with("disk full"), "{f}");
    }
    // Whatever sits at a final name is a whole, verified copy; the rest are temporaries.
    let at_pause = tree(&dest);
    for (rel, hash) in &at_pause {
        if is_temporary(rel) {
            continue;
        }
        let source = want.iter().find(|(r, _)| r == rel.strip_prefix("full/").unwrap());
        assert_eq!(source.map(|s| &s.1), Some(hash), "{rel} is partial at its final name");
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
