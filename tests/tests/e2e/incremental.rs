//! Incremental re-runs: nothing changed copies nothing and reads no file; changed, new and
//! deleted files are reported as such; deleted files stay at the destination unless asked.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::World;

/// Re-runs `job` and waits up to `timeout` for the new job to finish.
pub(crate) fn rerun(w: &World, job: &str, timeout: Duration) -> Value {
    let (status, next) = w
        .bifrost
        .api("POST", &format!("/api/v1/jobs/{job}/rerun"), None);
    assert_eq!(status, 201, "{next}");
    w.bifrost.wait_job(next["id"].as_str().unwrap(), timeout)
}

/// Reads the agent has served (its log lines).
pub(crate) fn reads(w: &World) -> usize {
    w.agent
        .logs()
        .lines()
        .filter(|l| l.contains(" read") && l.contains("start="))
        .count()
}

fn line<'a>(report: &'a [Value], name: &str) -> &'a Value {
    report
        .iter()
        .find(|f| f["source"].as_str().unwrap().ends_with(name))
        .unwrap_or_else(|| panic!("{name} not in {report:#?}"))
}

#[test]
fn reruns_copy_only_what_changed_and_report_deletions() {
    let w = World::new();
    let src = w.share.join("inc");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for (name, text) in [
        ("a.txt", "alpha"),
        ("b.txt", "bravo"),
        ("c.txt", "charlie"),
        ("sub/d.txt", "delta"),
    ] {
        std::fs::write(src.join(name), text).unwrap();
    }
    let dest = w.dir.path().join("dest");
    let first = w
        .bifrost
        .create_job(&w.connector, &[src.to_str().unwrap()], &dest, None);
    let done = w.bifrost.wait_job(&first, Duration::from_secs(30));
    assert_eq!(done["files_done"], 4, "{done}");

    // Nothing changed: nothing copied, no file opened for reading.
    let before = reads(&w);
    let same = rerun(&w, &first, Duration::from_secs(30));
    assert_eq!(
        (
            same["state"].as_str(),
            same["files_done"].as_u64(),
            same["files_skipped"].as_u64(),
            same["files_deleted"].as_u64()
        ),
        (Some("completed"), Some(0), Some(4), Some(0)),
        "{same}"
    );
    assert_eq!(
        reads(&w),
        before,
        "a re-run with nothing changed read file contents"
    );

    // One changed, one added, one deleted.
    std::fs::write(src.join("b.txt"), "bravo, revised").unwrap();
    std::fs::write(src.join("sub/e.txt"), "echo").unwrap();
    std::fs::remove_file(src.join("c.txt")).unwrap();
    let id = same["id"].as_str().unwrap().to_owned();
    let changed = rerun(&w, &id, Duration::from_secs(30));
    assert_eq!(changed["files_done"], 2, "{changed}");
    assert_eq!(changed["files_skipped"], 2, "{changed}");
    assert_eq!(changed["files_deleted"], 1, "{changed}");
    assert_eq!(
        changed["files_total"], 4,
        "deleted files are not in the total: {changed}"
    );
    let report = w.bifrost.files(changed["id"].as_str().unwrap());
    let b = line(&report, "b.txt");
    assert_eq!(
        (b["status"].as_str(), b["reason"].as_str()),
        (
            Some("copied"),
            Some("changed at the source since the last run")
        )
    );
    let e = line(&report, "e.txt");
    assert_eq!(
        (e["status"].as_str(), e["reason"].as_str()),
        (Some("copied"), Some("new since the last run"))
    );
    let c = line(&report, "c.txt");
    assert_eq!(c["status"], "deleted", "{c}");
    assert_eq!(
        c["reason"],
        "deleted at the source since the last run; kept at the destination"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("inc/c.txt")).unwrap(),
        "charlie"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("inc/b.txt")).unwrap(),
        "bravo, revised"
    );
    let (status, only) = w.bifrost.api(
        "GET",
        &format!(
            "/api/v1/jobs/{}/files?status=deleted",
            changed["id"].as_str().unwrap()
        ),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(only["files"].as_array().unwrap().len(), 1, "{only}");

    // A job that asks for it removes deleted files from the destination on its re-runs.
    let mirror_dest = w.dir.path().join("mirror");
    let (status, mirror) = w.bifrost.api(
        "POST",
        "/api/v1/jobs",
        Some(json!({"connector": w.connector, "sources": [src], "destination": {"kind": "folder", "path": mirror_dest}, "delete_removed": true})),
    );
    assert_eq!(status, 201, "{mirror}");
    assert_eq!(mirror["delete_removed"], true);
    let mirror = w
        .bifrost
        .wait_job(mirror["id"].as_str().unwrap(), Duration::from_secs(30));
    assert!(mirror_dest.join("inc/sub/e.txt").exists());
    std::fs::remove_file(src.join("sub/e.txt")).unwrap();
    let pruned = rerun(&w, mirror["id"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(pruned["files_deleted"], 1, "{pruned}");
    let report = w.bifrost.files(pruned["id"].as_str().unwrap());
    assert_eq!(
        line(&report, "e.txt")["reason"],
        "deleted at the source since the last run; removed from the destination"
    );
    assert!(!mirror_dest.join("inc/sub/e.txt").exists());
    assert!(mirror_dest.join("inc/sub/d.txt").exists());
}

#[test]
fn compare_by_blake3_catches_changes_that_keep_size_and_time() {
    let w = World::new();
    let src = w.share.join("sums");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("same.txt"), "unchanged").unwrap();
    std::fs::write(src.join("sneaky.txt"), "original!").unwrap();
    let dest = w.dir.path().join("dest");
    let (status, job) = w.bifrost.api(
        "POST",
        "/api/v1/jobs",
        Some(json!({"connector": w.connector, "sources": [src], "destination": {"kind": "folder", "path": dest}, "compare": "blake3"})),
    );
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["compare"], "blake3");
    let job = w
        .bifrost
        .wait_job(job["id"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(job["files_done"], 2, "{job}");

    // Same size, same modification time, different bytes: size and time cannot see it.
    let path = src.join("sneaky.txt");
    let mtime = filetime::FileTime::from_last_modification_time(&std::fs::metadata(&path).unwrap());
    std::fs::write(&path, "replaced!").unwrap();
    filetime::set_file_mtime(&path, mtime).unwrap();

    let by_hash = rerun(&w, job["id"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(
        (
            by_hash["files_done"].as_u64(),
            by_hash["files_skipped"].as_u64()
        ),
        (Some(1), Some(1)),
        "{by_hash}"
    );
    let report = w.bifrost.files(by_hash["id"].as_str().unwrap());
    assert_eq!(
        line(&report, "same.txt")["reason"],
        "already at the destination (same BLAKE3)"
    );
    assert_eq!(
        line(&report, "sneaky.txt")["reason"],
        "changed at the source since the last run"
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("sums/sneaky.txt")).unwrap(),
        "replaced!"
    );
    // The agent hashed in place: the unchanged file was hashed, never read out.
    let logs = w.agent.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("same.txt") && l.contains(" hash")),
        "{logs}"
    );
    assert_eq!(
        logs.lines()
            .filter(|l| l.contains("same.txt") && l.contains(" read"))
            .count(),
        1,
        "{logs}"
    );
}
