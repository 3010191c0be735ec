//! Allowed destination roots: once set, an operator's job, preview, mapping, re-run, sync or
//! resume into a folder outside them gets 403 before anything is made, a symlink inside a root
//! cannot lead out, only an admin changes them (API or CLI), hostile roots get 400, and they
//! survive a restart.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{bin, noise, Bifrost, Session, TestCa, World};

const NEW: &str = "a long new password 17";

/// A user added with `role`, signed in, with the one-time password changed.
fn active_user(bifrost: &Bifrost, name: &str, role: &str) -> Session {
    let otp = bifrost.user_add(name, role);
    let s = bifrost.sign_in(name, &otp);
    let (status, body) = s.change_password(&otp, NEW);
    assert_eq!(status, 200, "{body}");
    s
}

/// Sets the roots with the admin token; the settings answered.
fn set_roots(bifrost: &Bifrost, roots: &[&Path]) -> Value {
    let (status, body) = bifrost.api(
        "PUT",
        "/api/v1/settings",
        Some(json!({ "allowed_roots": roots })),
    );
    assert_eq!(status, 200, "{body}");
    body
}

/// A job body copying `source` into folder `dest`.
fn job(w: &World, source: &str, dest: &Path) -> Value {
    json!({"connector": w.connector, "sources": [source], "destination": {"kind": "folder", "path": dest}})
}

/// The refusal's message, which must name the allowed roots and say who changes them.
fn refused(status: u16, body: &Value, roots: &[&Path]) -> String {
    assert_eq!(status, 403, "{body}");
    let m = body["error"].as_str().unwrap().to_owned();
    let named: Vec<&str> = roots.iter().map(|r| r.to_str().unwrap()).collect();
    assert!(
        m.contains(&format!(
            "the allowed destination roots ({}); an admin sets them in Settings",
            named.join(", ")
        )),
        "{m}"
    );
    m
}

fn job_count(w: &World) -> usize {
    let (status, jobs) = w.bifrost.api("GET", "/api/v1/jobs", None);
    assert_eq!(status, 200, "{jobs}");
    jobs.as_array().unwrap().len()
}

#[test]
fn an_operator_job_outside_the_roots_is_refused_before_anything_is_made() {
    let w = World::new();
    std::fs::create_dir_all(w.share.join("docs")).unwrap();
    std::fs::write(w.share.join("docs/a.txt"), "alpha").unwrap();
    let docs = w.src("docs");
    let allowed = w.dir.path().join("allowed");
    std::fs::create_dir(&allowed).unwrap();
    set_roots(&w.bifrost, &[&allowed]);
    let op = active_user(&w.bifrost, "olga", "operator");

    let outside = w.dir.path().join("outside");
    let (status, body) = op.call("POST", "/api/v1/jobs", Some(job(&w, &docs, &outside)));
    let m = refused(status, &body, &[&allowed]);
    assert!(
        m.starts_with(&format!("destination {} ", outside.display())),
        "{m}"
    );
    // A sibling whose name starts with the root's is not inside it.
    let sibling = w.dir.path().join("allowed2/x");
    let (status, body) = op.call("POST", "/api/v1/jobs", Some(job(&w, &docs, &sibling)));
    refused(status, &body, &[&allowed]);
    let (status, body) = op.call(
        "POST",
        "/api/v1/jobs/preview",
        Some(job(&w, &docs, &outside)),
    );
    refused(status, &body, &[&allowed]);
    let mapped = json!({"connector": w.connector, "destination": {"kind": "folder", "path": allowed},
        "mappings": [{"source": docs, "destination": outside.join("m")}]});
    let (status, body) = op.call("POST", "/api/v1/jobs", Some(mapped));
    let m = refused(status, &body, &[&allowed]);
    assert!(m.starts_with("mapping destination "), "{m}");

    // A symlink inside the root that points outside it.
    let target = w.dir.path().join("target");
    std::fs::create_dir(&target).unwrap();
    std::os::unix::fs::symlink(&target, allowed.join("link")).unwrap();
    let through = allowed.join("link/x");
    let (status, body) = op.call("POST", "/api/v1/jobs", Some(job(&w, &docs, &through)));
    let m = refused(status, &body, &[&allowed]);
    assert!(m.contains("(which resolves to "), "{m}");

    assert!(!outside.exists() && !sibling.parent().unwrap().exists());
    assert!(!target.join("x").exists());
    assert_eq!(job_count(&w), 0, "a refused job is not recorded");

    // Inside, in folders the job makes.
    let inside = allowed.join("in/deeper");
    let (status, created) = op.call("POST", "/api/v1/jobs", Some(job(&w, &docs, &inside)));
    assert_eq!(status, 201, "{created}");
    let done = w
        .bifrost
        .wait_job(created["id"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(
        std::fs::read_to_string(inside.join("docs/a.txt")).unwrap(),
        "alpha"
    );
}

#[test]
fn a_job_from_before_the_roots_is_not_rerun_or_synced_outside_them() {
    let w = World::new();
    std::fs::create_dir_all(w.share.join("docs")).unwrap();
    std::fs::write(w.share.join("docs/a.txt"), "alpha").unwrap();
    let old = w.dir.path().join("old");
    let id = w
        .bifrost
        .create_job(&w.connector, &[&w.src("docs")], &old, None);
    let done = w.bifrost.wait_job(&id, Duration::from_secs(30));
    assert_eq!(done["state"], "completed", "{done}");

    let allowed = w.dir.path().join("allowed");
    set_roots(&w.bifrost, &[&allowed]);
    let op = active_user(&w.bifrost, "olga", "operator");
    let (status, body) = op.call("POST", &format!("/api/v1/jobs/{id}/rerun"), None);
    let m = refused(status, &body, &[&allowed]);
    assert!(
        m.starts_with(&format!("destination {} ", old.display())),
        "{m}"
    );
    let sync = |on: bool| {
        op.call(
            "POST",
            &format!("/api/v1/jobs/{id}/sync"),
            Some(json!({ "keep_in_sync": on })),
        )
    };
    let (status, body) = sync(true);
    refused(status, &body, &[&allowed]);
    // Turning it off (cut-over) writes nothing, so it is never refused.
    let (status, body) = sync(false);
    assert_eq!(status, 200, "{body}");
    assert_eq!(job_count(&w), 1, "no re-run was recorded");

    // With its folder allowed again, the same re-run starts.
    set_roots(&w.bifrost, &[&allowed, &old]);
    let (status, body) = op.call("POST", &format!("/api/v1/jobs/{id}/rerun"), None);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["rerun_of"], id.as_str());
}

#[test]
fn a_job_paused_before_the_roots_is_not_resumed_outside_them() {
    let w = World::new();
    std::fs::create_dir_all(w.share.join("big")).unwrap();
    std::fs::write(w.share.join("big/huge.bin"), noise(4 << 20, 3)).unwrap();
    let old = w.dir.path().join("old");
    // At 64 KiB/s the file takes a minute: it is still running when paused.
    let body = json!({"connector": w.connector, "sources": [w.src("big")], "destination": {"kind": "folder", "path": old}, "bandwidth_limit": 65536});
    let (status, job) = w.bifrost.api("POST", "/api/v1/jobs", Some(body));
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap();
    let (status, body) = w
        .bifrost
        .api("POST", &format!("/api/v1/jobs/{id}/pause"), None);
    assert_eq!((status, &body["state"]), (200, &json!("paused")), "{body}");

    let allowed = w.dir.path().join("allowed");
    set_roots(&w.bifrost, &[&allowed]);
    let op = active_user(&w.bifrost, "olga", "operator");
    let (status, body) = op.call("POST", &format!("/api/v1/jobs/{id}/resume"), None);
    refused(status, &body, &[&allowed]);
    assert_eq!(w.bifrost.job(id)["state"], "paused");
    // Cancelling writes nothing more, so it is allowed.
    let (status, body) = op.call("POST", &format!("/api/v1/jobs/{id}/cancel"), None);
    assert_eq!(
        (status, &body["state"]),
        (200, &json!("cancelled")),
        "{body}"
    );
}

fn started() -> (tempfile::TempDir, TestCa, Bifrost) {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    (dir, ca, bifrost)
}

fn roots_of(bifrost: &Bifrost) -> Value {
    let (status, body) = bifrost.api("GET", "/api/v1/settings", None);
    assert_eq!(status, 200, "{body}");
    body["allowed_roots"].clone()
}

#[test]
fn only_an_admin_sets_the_roots_hostile_ones_are_refused_and_they_survive_a_restart() {
    let (_dir, ca, mut bifrost) = started();
    assert_eq!(roots_of(&bifrost), json!([]), "none set by default");
    let viewer = active_user(&bifrost, "vera", "viewer");
    let operator = active_user(&bifrost, "otto", "operator");
    let (status, body) = viewer.call("GET", "/api/v1/settings", None);
    assert_eq!((status, body), (200, json!({"allowed_roots": []})));
    for s in [&viewer, &operator] {
        for put in [json!({"allowed_roots": ["/srv"]}), json!({"nonsense": 1})] {
            let (status, body) = s.call("PUT", "/api/v1/settings", Some(put));
            assert_eq!(status, 403, "{body}");
            assert!(body["error"].as_str().unwrap().contains("this needs admin"));
        }
    }
    assert_eq!(roots_of(&bifrost), json!([]));

    // Normalized and without duplicates, by the admin token and by an admin account.
    let given = json!({"allowed_roots": ["/srv/mover/", "/srv//mover", "/mnt/target/./x"]});
    let (status, body) = bifrost.api("PUT", "/api/v1/settings", Some(given));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"allowed_roots": ["/srv/mover", "/mnt/target/x"]})
    );
    let admin = active_user(&bifrost, "ada", "admin");
    let given = json!({"allowed_roots": ["/srv/mover", "/mnt/target"]});
    let (status, body) = admin.call("PUT", "/api/v1/settings", Some(given));
    assert_eq!(status, 200, "{body}");

    let long = format!("/{}", "a".repeat(4096));
    let many: Vec<String> = (0..65).map(|i| format!("/srv/{i}")).collect();
    for (bad, says) in [
        (
            json!({"allowed_roots": ["srv/mover"]}),
            "not an absolute path",
        ),
        (json!({"allowed_roots": [""]}), "not an absolute path"),
        (json!({"allowed_roots": ["/srv/../etc"]}), "contains '..'"),
        (json!({"allowed_roots": ["/srv\u{0}x"]}), "NUL"),
        (json!({"allowed_roots": [long]}), "4097 bytes long"),
        (json!({"allowed_roots": many}), "at most 64"),
        (json!({}), "missing field"),
        (json!({"allowed_roots": "/srv"}), "malformed request"),
        (json!({"allowed_roots": [7]}), "malformed request"),
        (json!({"allowed_roots": [], "more": true}), "unknown field"),
    ] {
        let (status, body) = bifrost.api("PUT", "/api/v1/settings", Some(bad.clone()));
        assert_eq!(status, 400, "{bad}: {body}");
        let m = body["error"].as_str().unwrap();
        assert!(m.contains(says) && m.len() < 1000, "{bad}: {m}");
    }
    assert_eq!(roots_of(&bifrost), json!(["/srv/mover", "/mnt/target"]));

    bifrost.restart(&ca);
    assert_eq!(roots_of(&bifrost), json!(["/srv/mover", "/mnt/target"]));
    let (status, body) = bifrost.api(
        "PUT",
        "/api/v1/settings",
        Some(json!({"allowed_roots": []})),
    );
    assert_eq!((status, body), (200, json!({"allowed_roots": []})));
    assert_eq!(roots_of(&bifrost), json!([]));
}

/// Runs `bifrost settings allowed-roots ARGS --data DATA`.
fn cli(bifrost: &Bifrost, args: &[&str]) -> Output {
    Command::new(bin("bifrost"))
        .args(["settings", "allowed-roots"])
        .args(args)
        .arg("--data")
        .arg(&bifrost.data)
        .output()
        .unwrap()
}

#[test]
fn the_cli_shows_sets_and_clears_the_roots_of_a_running_bifrost() {
    let (dir, _ca, bifrost) = started();
    let out = cli(&bifrost, &[]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.starts_with("No allowed destination roots are set"),
        "{text}"
    );

    let here = dir.path().to_str().unwrap();
    let out = cli(&bifrost, &[&format!("{here}/"), "/nowhere/yet"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text,
        format!("Allowed destination roots (a folder destination must be inside one):\n  {here}\n  /nowhere/yet (does not exist yet)\n")
    );
    // The running Bifrost reads it at once.
    assert_eq!(roots_of(&bifrost), json!([here, "/nowhere/yet"]));

    let out = cli(&bifrost, &["relative"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("is not an absolute path"), "{err}");
    let out = cli(&bifrost, &["--clear", "/srv"]);
    assert!(!out.status.success(), "--clear takes no paths");
    assert_eq!(roots_of(&bifrost), json!([here, "/nowhere/yet"]));

    let out = cli(&bifrost, &["--clear"]);
    assert!(out.status.success());
    assert_eq!(roots_of(&bifrost), json!([]));
}
