//! Names on a real share that look like paths elsewhere: each lands as its own folder, inside
//! the job's destination, and destinations that climb out are refused.

use std::time::Duration;

use serde_json::json;

use crate::support::World;

#[test]
fn folders_named_like_parent_and_self_on_windows_land_as_their_own_folders() {
    let w = World::new();
    for (folder, file) in [(r"x\..", "escaped.txt"), (r"y\.", "merged.txt")] {
        std::fs::create_dir_all(w.share.join(folder)).unwrap();
        std::fs::write(w.share.join(folder).join(file), "canary").unwrap();
    }
    let dest = w.dir.path().join("DEST");
    let inner = dest.join("inner");
    let job = w.bifrost.create_job(
        &w.connector,
        &[&w.src(r"x\.."), &w.src(r"y\.")],
        &inner,
        None,
    );
    let done = w.bifrost.wait_job(&job, Duration::from_secs(60));
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(
        std::fs::read_to_string(inner.join(r"x\..").join("escaped.txt")).unwrap(),
        "canary"
    );
    assert_eq!(
        std::fs::read_to_string(inner.join(r"y\.").join("merged.txt")).unwrap(),
        "canary"
    );
    // Nothing beside `inner`, nothing loose inside it.
    let beside: Vec<_> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["inner"]);
    let mut inside: Vec<_> = std::fs::read_dir(&inner)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    inside.sort();
    assert_eq!(inside, [r"x\..", r"y\."]);
    // Copied from inside the folder too: the walk's names are the same bytes.
    let job = w
        .bifrost
        .create_job(&w.connector, &[&w.src("")], &dest.join("whole"), None);
    let done = w.bifrost.wait_job(&job, Duration::from_secs(60));
    assert_eq!(done["state"], "completed", "{done}");
    assert!(dest
        .join("whole/share")
        .join(r"x\..")
        .join("escaped.txt")
        .is_file());
}

#[test]
fn destinations_that_climb_out_are_refused() {
    let w = World::new();
    std::fs::create_dir_all(w.share.join("home/alice")).unwrap();
    let dest = w.dir.path().join("dest");
    let climbing = [
        json!({"connector": w.connector, "sources": [w.src("home")],
            "destination": {"kind": "folder", "path": format!("{}/../escape", dest.display())}}),
        json!({"connector": w.connector, "destination": {"kind": "folder", "path": dest},
            "mappings": [{"source": w.src("home/alice"),
                "destination": format!("{}/alice/../../escape", dest.display())}]}),
    ];
    for body in climbing {
        for route in ["/api/v1/jobs", "/api/v1/jobs/preview"] {
            let (status, answer) = w.bifrost.api("POST", route, Some(body.clone()));
            assert_eq!(status, 400, "{route}: {answer}");
            assert!(
                answer["error"].as_str().unwrap().contains("'..'"),
                "{answer}"
            );
        }
    }
    assert!(!w.dir.path().join("escape").exists());
    // A source whose name is `..` has nothing to land under.
    let (status, answer) = w.bifrost.api(
        "POST",
        "/api/v1/jobs",
        Some(
            json!({"connector": w.connector, "sources": [format!("{}/..", w.src("home"))],
            "destination": {"kind": "folder", "path": dest}}),
        ),
    );
    assert!(status == 400 || status == 403, "{status} {answer}");
}
