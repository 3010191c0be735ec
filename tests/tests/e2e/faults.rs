//! Faults: Bifrost killed mid-job, the link cut mid-file, a file deleted mid-job.

use std::time::Duration;

use crate::support::{noise, wait_for, World};

fn make_files(dir: &std::path::Path, count: usize, size: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..count {
        std::fs::write(
            dir.join(format!("file{i:03}.bin")),
            noise(size, i as u64 + 1),
        )
        .unwrap();
    }
}

fn assert_same_files(src: &std::path::Path, dest: &std::path::Path) {
    let mut n = 0;
    for e in std::fs::read_dir(src).unwrap().flatten() {
        let copied = dest.join(e.file_name());
        assert!(
            std::fs::read(e.path()).unwrap() == std::fs::read(&copied).unwrap(),
            "{} differs",
            copied.display()
        );
        n += 1;
    }
    assert!(n > 0);
}

#[test]
fn bifrost_killed_and_restarted_mid_job() {
    let mut w = World::new();
    let src = w.share.join("data");
    make_files(&src, 60, 4 * 1024 * 1024);
    let dest = w.dir.path().join("dest");
    let job = w
        .bifrost
        .create_job(&w.connector, &[src.to_str().unwrap()], &dest, Some(1));
    let at_kill = wait_for(Duration::from_secs(60), "some files copied", || {
        let j = w.bifrost.job(&job);
        (j["files_done"].as_u64().unwrap() >= 2).then_some(j)
    });
    w.bifrost.restart(&w.ca);
    assert_eq!(
        at_kill["state"], "running",
        "the job was still running when Bifrost was killed: {at_kill}"
    );
    w.agent
        .wait_status("authorized as fs1", Duration::from_secs(30));
    let done = w.bifrost.wait_job(&job, Duration::from_secs(120));
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["files_done"], 60);
    assert_same_files(&src, &dest.join("data"));
    let report = w.bifrost.files(&job);
    for f in &report {
        let data = std::fs::read(dest.join(f["destination"].as_str().unwrap())).unwrap();
        assert_eq!(f["blake3"], blake3::hash(&data).to_hex().as_str());
    }
}

#[test]
fn link_cut_mid_file_resumes_with_range() {
    let w = World::new();
    let src = w.share.join("big");
    std::fs::create_dir_all(&src).unwrap();
    let data = noise(400 * 1024 * 1024, 99);
    std::fs::write(src.join("huge.bin"), &data).unwrap();
    let dest = w.dir.path().join("dest");
    let job = w
        .bifrost
        .create_job(&w.connector, &[src.to_str().unwrap()], &dest, Some(1));
    wait_for(Duration::from_secs(60), "part of the file copied", || {
        let j = w.bifrost.job(&job);
        let done = j["bytes_done"].as_u64().unwrap();
        (done > 0 && done < data.len() as u64 / 2).then_some(())
    });
    let out = w.agent.cli(&["disconnect"]);
    assert!(out.status.success());
    let j = w.bifrost.job(&job);
    assert_eq!(j["state"], "running", "{j}");
    assert_eq!(
        j["files_done"], 0,
        "the file was still in flight when the link was cut: {j}"
    );
    let out = w.agent.cli(&["connect"]);
    assert!(out.status.success());
    let done = w.bifrost.wait_job(&job, Duration::from_secs(120));
    assert_eq!(done["state"], "completed", "{done}");
    let copied = std::fs::read(dest.join("big/huge.bin")).unwrap();
    assert!(copied == data, "the resumed file differs");
    assert_eq!(
        w.bifrost.files(&job)[0]["blake3"],
        blake3::hash(&data).to_hex().as_str()
    );
    // The second read started where the first stopped, not at zero.
    let logs = w.agent.logs();
    let resumed = logs
        .lines()
        .filter(|l| l.contains("huge.bin") && l.contains(" read"))
        .any(|l| !l.contains("start=0"));
    assert!(resumed, "no ranged read in the agent log:\n{logs}");
}

#[test]
fn file_deleted_mid_job_is_reported_and_the_rest_completes() {
    let w = World::new();
    let src = w.share.join("data");
    make_files(&src, 30, 2 * 1024 * 1024);
    let dest = w.dir.path().join("dest");
    let job = w
        .bifrost
        .create_job(&w.connector, &[src.to_str().unwrap()], &dest, Some(1));
    let victim = wait_for(
        Duration::from_secs(60),
        "a pending file late in the job",
        || {
            let report = w.bifrost.files(&job);
            let done = report.iter().filter(|f| f["status"] == "copied").count();
            (report.len() == 30 && done >= 1).then(|| {
                report.last().unwrap()["source"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
        },
    );
    std::fs::remove_file(&victim).unwrap();
    let done = w.bifrost.wait_job(&job, Duration::from_secs(120));
    assert_eq!(done["state"], "completed_with_errors", "{done}");
    assert_eq!(
        (done["files_done"].as_u64(), done["files_failed"].as_u64()),
        (Some(29), Some(1))
    );
    let report = w.bifrost.files(&job);
    let failed: Vec<_> = report.iter().filter(|f| f["status"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["source"], victim.as_str());
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("no longer exists"),
        "{}",
        failed[0]
    );
    let (_, only_failed) = w.bifrost.api(
        "GET",
        &format!("/api/v1/jobs/{job}/files?status=failed"),
        None,
    );
    assert_eq!(only_failed["files"].as_array().unwrap().len(), 1);
}

#[test]
fn a_dead_link_is_noticed_within_30_seconds() {
    use crate::support::{Agent, Bifrost, Forwarder, TestCa};
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let link = Forwarder::new(&bifrost.addr);
    let relay = format!("https://127.0.0.1:{}", link.port);
    let agent = Agent::start(
        &dir.path().join("home"),
        &[
            "--relay",
            &relay,
            "--relay-ca",
            ca.ca_file.to_str().unwrap(),
        ],
    );
    bifrost.authorize(&agent.key(), "fs1");
    agent.wait_status("authorized as fs1", Duration::from_secs(10));
    let frozen_at = std::time::Instant::now();
    link.freeze();
    let status = agent.wait_status("Mover Agent Status: offline", Duration::from_secs(30));
    assert!(status.contains("connection to Bifrost lost"), "{status}");
    bifrost.wait_connector("Bifrost to drop the dead tunnel", |c| {
        c["state"] == "offline"
    });
    assert!(
        frozen_at.elapsed() < Duration::from_secs(30),
        "took {:?}",
        frozen_at.elapsed()
    );
}

#[test]
fn sigterm_lets_the_file_in_flight_finish() {
    let mut w = World::new();
    let src = w.share.join("term");
    std::fs::create_dir_all(&src).unwrap();
    let data = noise(16 << 20, 77);
    std::fs::write(src.join("doc.bin"), &data).unwrap();
    let dest = w.dir.path().join("dest");
    let (status, job) = w.bifrost.api(
        "POST",
        "/api/v1/jobs",
        Some(serde_json::json!({"connector": w.connector, "sources": [src], "destination": {"kind": "folder", "path": dest}, "bandwidth_limit": 8_000_000})),
    );
    assert_eq!(status, 201, "{job}");
    let job = job["id"].as_str().unwrap().to_owned();
    let partial = dest.join("term/.doc.bin.mover-part");
    wait_for(Duration::from_secs(30), "a quarter of the file", || {
        (std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) >= 4 << 20).then_some(())
    });
    let asked = std::time::Instant::now();
    w.agent.terminate();
    assert!(w.agent.wait_exit_within(Duration::from_secs(40)).success());
    let took = asked.elapsed();
    // The read in flight was let finish (about 1.5 s more at 8 MB/s), not cut.
    let done = w.bifrost.wait_job(&job, Duration::from_secs(10));
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(std::fs::read(dest.join("term/doc.bin")).unwrap(), data);
    assert_eq!(
        w.bifrost.files(&job)[0]["blake3"],
        blake3::hash(&data).to_hex().as_str()
    );
    assert!(took < Duration::from_secs(35), "{took:?}");
    let logs = w.agent.logs();
    assert!(
        logs.contains("letting the reads in flight finish"),
        "{logs}"
    );
    let reads = logs
        .lines()
        .filter(|l| l.contains("doc.bin") && l.contains(" read"))
        .count();
    assert_eq!(reads, 1, "the file was read once, not resumed: {logs}");
}

#[test]
fn a_file_renamed_just_before_bifrost_died_counts_as_copied() {
    let mut w = World::new();
    let src = w.share.join("journal");
    make_files(&src, 3, 100_000);
    let dest = w.dir.path().join("dest");
    let job = w
        .bifrost
        .create_job(&w.connector, &[src.to_str().unwrap()], &dest, Some(1));
    let done = w.bifrost.wait_job(&job, Duration::from_secs(30));
    assert_eq!(done["files_done"], 3, "{done}");
    // Recreate the moment between the rename and recording the result: the journal (the
    // verified BLAKE3) is written, the file is in place, its row still says pending.
    w.bifrost.kill();
    {
        let db = rusqlite::Connection::open(w.bifrost.data.join("bifrost.db")).unwrap();
        let changed = db
            .execute(
                "UPDATE job_files SET status = 'pending' WHERE job = ?1 AND dest LIKE '%file001.bin'",
                [&job],
            )
            .unwrap();
        assert_eq!(changed, 1);
        // The job's kept counts move with it, as in the transaction that would have been lost.
        db.execute(
            "UPDATE job_counts SET files = files + CASE status WHEN 'pending' THEN 1 ELSE -1 END,
             bytes = bytes + CASE status WHEN 'pending' THEN 100000 ELSE -100000 END
             WHERE job = ?1 AND status IN ('pending', 'copied')",
            [&job],
        )
        .unwrap();
        db.execute("UPDATE jobs SET state = 'running' WHERE id = ?1", [&job])
            .unwrap();
    }
    let reads = |w: &World| {
        w.agent
            .logs()
            .lines()
            .filter(|l| l.contains("file001.bin") && l.contains(" read"))
            .count()
    };
    let before = reads(&w);
    w.bifrost.restart(&w.ca);
    w.agent
        .wait_status("authorized as fs1", Duration::from_secs(30));
    let done = w.bifrost.wait_job(&job, Duration::from_secs(30));
    assert_eq!(
        (done["files_done"].as_u64(), done["files_skipped"].as_u64()),
        (Some(3), Some(0)),
        "{done}"
    );
    let data = std::fs::read(dest.join("journal/file001.bin")).unwrap();
    let line = w
        .bifrost
        .files(&job)
        .into_iter()
        .find(|f| f["source"].as_str().unwrap().ends_with("file001.bin"))
        .unwrap();
    assert_eq!(line["blake3"], blake3::hash(&data).to_hex().as_str());
    assert_eq!(reads(&w), before, "the file was read again");
}
