//! Parallel tunnel connections: an agent opens extra lanes beside its tunnel, Bifrost spreads
//! reads over them, and losing one lane fails no file.

use std::time::Duration;

use serde_json::json;

use crate::support::{noise, wait_for, Agent, Bifrost, Forwarder, TestCa};

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
    let relay = format!("https://127.0.0.1:{}", link.port);
    let agent = Agent::start(
        &dir.path().join("home"),
        &[
            "--relay",
            &relay,
            "--relay-ca",
            ca.ca_file.to_str().unwrap(),
            "--share",
            share.to_str().unwrap(),
        ],
    );
    let id = bifrost.authorize(&agent.key(), "lanes")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The default: the tunnel and two extra lanes, opened once it is authorized.
    bifrost.wait_connector("three connections", |c| {
        c["id"] == id.as_str() && c["connections"] == 3
    });
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
