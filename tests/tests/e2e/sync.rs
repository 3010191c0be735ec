//! Live delta: a job kept in sync until cut-over copies what changes at the source, by itself,
//! until it is turned off.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{wait_for, World};

fn jobs(w: &World) -> Vec<Value> {
    let (status, body) = w.bifrost.api("GET", "/api/v1/jobs", None);
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

#[test]
fn a_job_kept_in_sync_copies_changes_until_cut_over() {
    let w = World::new();
    let src = w.share.join("live");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), "first").unwrap();
    let dest = w.dir.path().join("dest");
    let (status, first) = w.bifrost.api(
        "POST",
        "/api/v1/jobs",
        Some(json!({"connector": w.connector, "sources": [src], "destination": {"kind": "folder", "path": dest}, "keep_in_sync": true})),
    );
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["keep_in_sync"], true);
    let first_id = first["id"].as_str().unwrap().to_owned();
    w.bifrost.wait_job(&first_id, Duration::from_secs(30));
    wait_for(
        Duration::from_secs(10),
        "the agent to watch the source",
        || {
            w.agent
                .logs()
                .contains("live delta: watching")
                .then_some(())
        },
    );

    // A change at the source starts the next pass by itself, which copies just that.
    std::fs::write(src.join("sub/new.txt"), "arrived later").unwrap();
    let second = wait_for(Duration::from_secs(30), "a pass after the change", || {
        jobs(&w).into_iter().find(|j| {
            j["rerun_of"] == first_id.as_str()
                && ["completed", "completed_with_errors"].contains(&j["state"].as_str().unwrap())
        })
    });
    assert_eq!(second["files_done"], 1, "{second}");
    assert_eq!(second["keep_in_sync"], true);
    assert_eq!(
        std::fs::read_to_string(dest.join("live/sub/new.txt")).unwrap(),
        "arrived later"
    );

    // Cut-over: turned off on the latest pass, later changes stay at the source.
    let second_id = second["id"].as_str().unwrap().to_owned();
    let stops = || {
        w.agent
            .logs()
            .matches("live delta: watching nothing")
            .count()
    };
    let stopped_before = stops();
    let (status, off) = w.bifrost.api(
        "POST",
        &format!("/api/v1/jobs/{second_id}/sync"),
        Some(json!({"keep_in_sync": false})),
    );
    assert_eq!(status, 200, "{off}");
    assert_eq!(off["keep_in_sync"], false);
    wait_for(
        Duration::from_secs(10),
        "the agent to stop watching",
        || (stops() > stopped_before).then_some(()),
    );
    let before = jobs(&w).len();
    std::fs::write(src.join("late.txt"), "after cut-over").unwrap();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(jobs(&w).len(), before, "a pass started after cut-over");
    assert!(!dest.join("live/late.txt").exists());
}
