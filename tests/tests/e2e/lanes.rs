//! Parallel tunnel connections: an agent opens extra lanes beside its tunnel, Bifrost spreads
//! reads over them, and losing one lane fails no file.

use std::time::Duration;

use serde_json::json;

use crate::support::{noise, wait_for, Agent, Bifrost, Forwarder, TestCa};

/// An agent sharing `share` that reaches Bifrost through `link`, authorized as `name`, with
/// its default three connections open.
fn agent_through(
    link: &Forwarder,
    bifrost: &Bifrost,
    ca: &TestCa,
    share: &std::path::Path,
    name: &str,
) -> (Agent, String) {
    let home = share.with_file_name("home");
    let relay = format!("https://127.0.0.1:{}", link.port);
    let agent = Agent::start(
        &home,
        &[
            "--relay",
            &relay,
            "--relay-ca",
            ca.ca_file.to_str().unwrap(),
            "--share",
            share.to_str().unwrap(),
        ],
    );
    let id = bifrost.authorize(&agent.key(), name)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The default: the tunnel and two extra lanes, opened once it is authorized.
    bifrost.wait_connector("three connections", |c| {
        c["id"] == id.as_str() && c["connections"] == 3
    });
    (agent, id)
}

#[test]
fn reads_spread_over_lanes_and_losing_one_fails_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let link = Forwarder::new(&bifrost.addr);
    let share = dir.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    let files: Vec<Vec<u8>> = (0..12).map(|i| noise(3 << 20, 100 + i)).collect();
    for (i, f) in files.iter().enumerate() {
        std::fs::write(share.join(format!("f{i:02}")), f).unwrap();
    }
    let (_agent, id) = agent_through(&link, &bifrost, &ca, &share, "lanes");
    assert_eq!(link.per_connection().len(), 3);

    let dest = dir.path().join("dest");
    // Paced so the cut lands mid-job: 36 MiB at 12 MiB/s.
    let (status, job) = bifrost.api(
        "POST",
        "/api/v1/jobs",
        Some(json!({
            "connector": id,
            "sources": [share],
            "destination": {"kind": "folder", "path": dest},
            "concurrency": 6,
            "bandwidth_limit": 12 << 20,
        })),
    );
    assert_eq!(status, 201, "{job}");
    let job = job["id"].as_str().unwrap().to_owned();
    wait_for(Duration::from_secs(20), "a quarter of the job", || {
        (bifrost.job(&job)["bytes_done"].as_u64().unwrap_or(0) > 9 << 20).then_some(())
    });
    // Every lane carried file content.
    let before = link.per_connection();
    assert!(
        before.iter().filter(|&&n| n > 512 << 10).count() >= 2,
        "reads were not spread: {before:?}"
    );
    link.cut_connection(2);
    let done = bifrost.wait_job(&job, Duration::from_secs(60));
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["files_done"], 12, "{done}");
    assert_eq!(done["files_failed"], 0, "{done}");
    for (i, f) in files.iter().enumerate() {
        let got = std::fs::read(dest.join("share").join(format!("f{i:02}")))
            .or_else(|_| std::fs::read(dest.join(format!("f{i:02}"))))
            .unwrap();
        assert!(got == *f, "f{i:02} differs");
    }
    // The lost lane was opened again.
    bifrost.wait_connector("the lane back", |c| {
        c["id"] == id.as_str() && c["connections"] == 3
    });
    assert_eq!(link.per_connection().len(), 4);
}

/// A big file goes in parts over the lanes; a Bifrost killed mid-file fetches only the parts
/// it had not synced, and the recorded BLAKE3 is the whole file's.
#[test]
fn a_big_file_in_parts_resumes_after_bifrost_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let mut bifrost = Bifrost::start(dir.path(), &ca);
    let link = Forwarder::new(&bifrost.addr);
    let share = dir.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    // Not a power of two: the last parts are uneven subtrees. A run of zeros stays a hole.
    let mut big = noise(100 * (1 << 20) + 12345, 9);
    big[(40 << 20)..(50 << 20)].fill(0);
    std::fs::write(share.join("big"), &big).unwrap();
    let (_agent, id) = agent_through(&link, &bifrost, &ca, &share, "parts");
    // About 4 s for the file on three lanes: room to kill Bifrost half way.
    link.throttle(8 << 20);
    let dest = dir.path().join("dest");
    let job = bifrost.create_job(&id, &[share.join("big").to_str().unwrap()], &dest, None);
    let size = big.len() as u64;
    wait_for(Duration::from_secs(30), "half of the file", || {
        (link.bytes_up() > size / 2).then_some(())
    });
    bifrost.restart(&ca);
    let journal = dest.join(".big.mover-part.parts");
    let lines = std::fs::read_to_string(&journal).unwrap().lines().count();
    assert!(lines > 3, "the journal holds finished parts: {lines} lines");
    let done = bifrost.wait_job(&job, Duration::from_secs(60));
    assert_eq!(done["state"], "completed", "{done}");
    let got = std::fs::read(dest.join("big")).unwrap();
    assert!(got == big, "the copy differs");
    let files = bifrost.files(&job);
    assert_eq!(
        files[0]["blake3"],
        blake3::hash(&big).to_hex().to_string(),
        "{files:?}"
    );
    assert!(
        !journal.exists(),
        "the journal is removed with the part file"
    );
    let up = link.bytes_up();
    assert!(
        up < size + size * 3 / 10,
        "{up} bytes crossed the link for a {size}-byte file"
    );
    // The zeros were not written: the copy is sparse.
    use std::os::unix::fs::MetadataExt;
    let blocks = std::fs::metadata(dest.join("big")).unwrap().blocks() * 512;
    assert!(blocks < size - (8 << 20), "{blocks} bytes allocated");
}
