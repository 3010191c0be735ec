//! Graceful drain: SIGTERM lets the file in flight finish within `--drain-timeout`; a copy
//! still running at the deadline is left queued and the next start resumes it at the byte (in
//! one stream) or from its journaled parts (in parts).

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{noise, wait_for, Agent, Bifrost, TestCa};

/// A job's state and reason, and its files' statuses and BLAKE3s, as the database holds them.
type Recorded = (String, Option<String>, Vec<(String, Option<String>)>);

/// Bifrost with `--drain-timeout`, and an authorized agent sharing `share/`.
struct Rig {
    dir: tempfile::TempDir,
    ca: TestCa,
    bifrost: Bifrost,
    agent: Agent,
    share: PathBuf,
    connector: String,
    drain: String,
}

impl Rig {
    fn new(drain_secs: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(dir.path());
        let drain = drain_secs.to_string();
        let bifrost = Bifrost::spawn_with(
            &dir.path().join("bifrost-data"),
            &crate::support::stable_addr(),
            Some(&ca),
            &["--drain-timeout", &drain],
        );
        let share = dir.path().join("share");
        std::fs::create_dir_all(&share).unwrap();
        let (agent, connector) =
            crate::support::authorized_agent(dir.path(), &bifrost, &ca, &share);
        Self {
            dir,
            ca,
            bifrost,
            agent,
            share,
            connector,
            drain,
        }
    }

    fn job(&self, source: &Path, dest: &Path, bandwidth: Option<u64>) -> String {
        let mut body = json!({
            "connector": self.connector,
            "sources": [source],
            "destination": {"kind": "folder", "path": dest},
            "concurrency": 1,
        });
        if let Some(b) = bandwidth {
            body["bandwidth_limit"] = json!(b);
        }
        let (status, job) = self.bifrost.api("POST", "/api/v1/jobs", Some(body));
        assert_eq!(status, 201, "{job}");
        job["id"].as_str().unwrap().to_owned()
    }

    /// A job's state and reason, and its files' statuses, read from the database of a stopped
    /// Bifrost.
    fn recorded(&self, job: &str) -> Recorded {
        let db = rusqlite::Connection::open(self.bifrost.data.join("bifrost.db")).unwrap();
        let (state, reason) = db
            .query_row("SELECT state, reason FROM jobs WHERE id = ?1", [job], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        let mut stmt = db
            .prepare("SELECT status, blake3 FROM job_files WHERE job = ?1 ORDER BY seq")
            .unwrap();
        let files = stmt
            .query_map([job], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        (state, reason, files)
    }

    /// The bytes Bifrost's `/metrics` says it received for `job` since it started here (0
    /// when the job is not running).
    fn received(&self, job: &str) -> u64 {
        let (status, body) = self.bifrost.api("GET", "/metrics", None);
        assert_eq!(status, 200, "{body}");
        let name = format!("bifrost_job_received_bytes_total{{job=\"{job}\"}} ");
        body.as_str()
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(&name)?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Waits for the "draining" event and returns how many jobs were running at it.
    fn draining_jobs(&self) -> u64 {
        let line = self
            .bifrost
            .stderr
            .wait_line("Bifrost to begin draining", |l| l.contains("draining:"));
        field(&line, "jobs").unwrap_or_else(|| panic!("no job count in {line}"))
    }
}

/// The number after ` NAME=` in a log line.
fn field(line: &str, name: &str) -> Option<u64> {
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn blake3_of(path: &Path) -> String {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(path).unwrap()).unwrap();
    h.finalize().to_hex().to_string()
}

/// A 1 GiB sparse file with noise at its start, middle and end: cheap to make and to read,
/// and a copy that loses or moves any of the noise fails its check.
fn sparse_gib(path: &Path) {
    const GIB: u64 = 1 << 30;
    let mut f = std::fs::File::create(path).unwrap();
    f.set_len(GIB).unwrap();
    for (i, at) in [0, GIB / 2 + 12_345, GIB - (1 << 20)]
        .into_iter()
        .enumerate()
    {
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&noise(1 << 20, i as u64 + 3)).unwrap();
    }
}

#[test]
fn sigterm_lets_the_file_in_flight_finish_within_the_grace_period() {
    const GRACE: u64 = 60;
    let mut rig = Rig::new(GRACE);
    std::fs::create_dir_all(rig.share.join("big")).unwrap();
    let source = rig.share.join("big/one.bin");
    sparse_gib(&source);
    let dest = rig.dir.path().join("dest");
    let job = rig.job(&rig.share.join("big"), &dest, None);
    let partial = dest.join("big/.one.bin.mover-part");
    wait_for(Duration::from_secs(60), "the copy to begin", || {
        partial.exists().then_some(())
    });
    let signalled = Instant::now();
    rig.bifrost.terminate();
    let status = rig
        .bifrost
        .wait_exit_within(Duration::from_secs(GRACE + 15));
    let took = signalled.elapsed();
    eprintln!("Bifrost drained a 1 GiB copy and exited {took:?} after SIGTERM");
    assert!(status.success(), "Bifrost exited with {status}");
    assert!(took < Duration::from_secs(GRACE), "the drain took {took:?}");
    let copied = dest.join("big/one.bin");
    assert!(!partial.exists(), "the temporary file is still there");
    let want = blake3_of(&source);
    assert_eq!(blake3_of(&copied), want);
    let (state, _, files) = rig.recorded(&job);
    assert_eq!(state, "completed");
    assert_eq!(files, [("copied".to_owned(), Some(want))]);
    // The copy was still in flight when the drain began (not finished before the signal).
    let jobs = rig.draining_jobs();
    assert_eq!(jobs, 1, "the copy was not in flight at SIGTERM");
}

#[test]
fn sigterm_past_the_grace_period_leaves_the_copy_to_resume_at_the_byte() {
    const SIZE: usize = 64 << 20;
    /// About 8 s for the file: the 3 s grace ends with it about half copied.
    const LIMIT: u64 = 8 << 20;
    let mut rig = Rig::new(3);
    std::fs::create_dir_all(rig.share.join("slow")).unwrap();
    std::fs::create_dir_all(rig.share.join("later")).unwrap();
    let data = noise(SIZE, 11);
    std::fs::write(rig.share.join("slow/long.bin"), &data).unwrap();
    std::fs::write(rig.share.join("later/note.txt"), b"queued during the drain").unwrap();
    let dest = rig.dir.path().join("dest");
    let job = rig.job(&rig.share.join("slow"), &dest, Some(LIMIT));
    let partial = dest.join("slow/.long.bin.mover-part");
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let at_signal = wait_for(Duration::from_secs(60), "the copy to get going", || {
        let n = len(&partial);
        (n >= 4 << 20).then_some(n)
    });
    rig.bifrost.terminate();
    assert_eq!(rig.draining_jobs(), 1);
    // New work while draining is queued for the next start, not started and not lost.
    let later = rig.job(&rig.share.join("later"), &dest, None);
    assert_eq!(rig.bifrost.job(&later)["state"], "queued");
    let status = rig.bifrost.wait_exit_within(Duration::from_secs(20));
    assert!(status.success(), "Bifrost exited with {status}");
    let at_exit = len(&partial);
    eprintln!("at SIGTERM {at_signal} bytes, at the drain deadline {at_exit} of {SIZE}");
    assert!(
        at_exit > at_signal,
        "the copy did not go on during the grace period"
    );
    assert!(
        at_exit < SIZE as u64,
        "the copy finished: nothing to resume"
    );
    let (state, reason, files) = rig.recorded(&job);
    assert_eq!(state, "queued");
    assert!(reason.unwrap().contains("next start"));
    assert_eq!(files, [("pending".to_owned(), None)]);
    assert_eq!(rig.recorded(&later).0, "queued");

    let (data_dir, addr) = (rig.bifrost.data.clone(), rig.bifrost.addr.clone());
    let drain = rig.drain.clone();
    rig.bifrost = wait_for(Duration::from_secs(10), "Bifrost to start again", || {
        std::panic::catch_unwind(|| {
            Bifrost::spawn_with(
                &data_dir,
                &addr,
                Some(&rig.ca),
                &["--drain-timeout", &drain],
            )
        })
        .ok()
    });
    // Bifrost's own count of the bytes it received for the job since this start, sampled
    // until the job ends (the gauge goes with the running job).
    let mut received = 0u64;
    let done = wait_for(Duration::from_secs(90), "the resumed job to finish", || {
        received = received.max(rig.received(&job));
        let j = rig.bifrost.job(&job);
        (!["queued", "running"].contains(&j["state"].as_str().unwrap())).then_some(j)
    });
    assert_eq!(done["state"], "completed", "{done}");
    let left = SIZE as u64 - at_exit;
    eprintln!("Bifrost received at least {received} bytes after the restart for the {left} left");
    assert!(
        received > 0 && received <= left,
        "{received} bytes received for {left} left"
    );
    assert_eq!(
        std::fs::read(dest.join("slow/long.bin")).unwrap(),
        data,
        "the resumed file differs"
    );
    assert_eq!(
        rig.bifrost.files(&job)[0]["blake3"],
        blake3::hash(&data).to_hex().as_str()
    );
    let later_done = rig.bifrost.wait_job(&later, Duration::from_secs(30));
    assert_eq!(later_done["state"], "completed", "{later_done}");

    // The agent's reads of the file: the one after the restart starts where the drain left it.
    let logs = rig.agent.logs();
    let starts: Vec<u64> = logs
        .lines()
        .filter(|l| l.contains("long.bin") && l.contains(" read"))
        .filter_map(|l| field(l, "start"))
        .collect();
    let resumed_at = *starts.last().unwrap();
    let reread = SIZE as u64 - resumed_at;
    eprintln!(
        "reads of the file start at {starts:?}: {reread} bytes read after the restart for the {} left",
        SIZE as u64 - at_exit
    );
    assert_eq!(resumed_at, at_exit, "not resumed at the byte: {starts:?}");
    assert!(starts.len() >= 2, "{starts:?}");
}

#[test]
fn a_big_file_cut_off_in_parts_keeps_its_journaled_parts() {
    const PART: u64 = 4 << 20;
    let mut rig = Rig::new(1);
    std::fs::create_dir_all(rig.share.join("parts")).unwrap();
    let source = rig.share.join("parts/big.bin");
    sparse_gib(&source);
    let dest = rig.dir.path().join("dest");
    let job = rig.job(&rig.share.join("parts"), &dest, None);
    let journal = dest.join("parts/.big.bin.mover-part.parts");
    let journaled = || {
        std::fs::read_to_string(&journal)
            .map(|t| t.lines().count().saturating_sub(1))
            .unwrap_or(0)
    };
    // Signalled once some parts are journaled: a 1 s grace cannot finish the other ~900 MiB.
    wait_for(Duration::from_secs(60), "a part to be journaled", || {
        (journaled() > 0).then_some(())
    });
    rig.bifrost.terminate();
    let status = rig.bifrost.wait_exit_within(Duration::from_secs(20));
    assert!(status.success(), "Bifrost exited with {status}");
    let kept = journaled() as u64;
    assert!(
        !dest.join("parts/big.bin").exists(),
        "the copy finished: nothing to resume"
    );
    let reads = |logs: &str| {
        logs.lines()
            .filter(|l| l.contains("big.bin") && l.contains(" read"))
            .count() as u64
    };
    let before = reads(&rig.agent.logs());

    let (data_dir, addr) = (rig.bifrost.data.clone(), rig.bifrost.addr.clone());
    rig.bifrost = wait_for(Duration::from_secs(10), "Bifrost to start again", || {
        std::panic::catch_unwind(|| Bifrost::spawn(&data_dir, &addr, Some(&rig.ca))).ok()
    });
    let done = rig.bifrost.wait_job(&job, Duration::from_secs(120));
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(blake3_of(&dest.join("parts/big.bin")), blake3_of(&source));
    let after = reads(&rig.agent.logs()) - before;
    let parts = (1u64 << 30) / PART;
    eprintln!(
        "{kept} of {parts} parts journaled at the drain deadline ({before} had been asked for); {after} parts ({} MiB) read after the restart",
        (after * PART) >> 20
    );
    assert!(
        after <= parts - kept,
        "{after} parts read again, {kept} of {parts} were journaled"
    );
}
