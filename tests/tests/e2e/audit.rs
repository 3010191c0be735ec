//! The audit trail: a scripted session of every kind of change yields exactly the expected
//! rows, each with its actor, role and address; failed and refused calls write none; the rows
//! survive a restart; no API edits them; filters and the CSV export work.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{bin, noise, one_time_password, wait_for, World};

const NEW: &str = "a long new password 17";

/// The trail's rows, oldest first, as `actor|role|addr|action|target|detail`.
fn trail(w: &World, query: &str) -> Vec<String> {
    let (status, page) = w.bifrost.api("GET", &format!("/api/v1/audit{query}"), None);
    assert_eq!(status, 200, "{page}");
    let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let mut rows: Vec<String> = page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            [
                s(&r["actor"]),
                s(&r["role"]),
                s(&r["addr"]),
                s(&r["action"]),
                s(&r["target"]),
                s(&r["detail"]),
            ]
            .join("|")
        })
        .collect();
    rows.reverse();
    rows
}

fn state_is(w: &World, job: &str, state: &str) {
    wait_for(Duration::from_secs(20), state, || {
        (w.bifrost.job(job)["state"] == state).then_some(())
    });
}

#[test]
fn every_change_is_one_row_with_who_where_and_what() {
    let mut w = World::new();
    // Slow enough (64 KiB/s) to pause, resume and cancel while it runs.
    std::fs::write(w.share.join("big.bin"), noise(4 * 1024 * 1024, 3)).unwrap();
    let conn = w.connector.clone();

    let out = w.bifrost.user(&["add", "olga", "--role", "operator"]);
    let otp = one_time_password(&out);
    let (status, _, _) = w
        .bifrost
        .sign_in_with(json!({"name": "olga", "password": "not her password"}));
    assert_eq!(status, 401);
    let olga = w.bifrost.sign_in("olga", &otp);
    assert_eq!(olga.change_password(&otp, NEW).0, 200);
    let (status, body) = olga.call(
        "PATCH",
        &format!("/api/v1/connectors/{conn}"),
        Some(json!({"name": "fs-main"})),
    );
    assert_eq!(status, 200, "{body}");
    let dest = w.dir.path().join("dest");
    let (status, job) = olga.call(
        "POST",
        "/api/v1/jobs",
        Some(json!({"connector": conn, "sources": [w.src("big.bin")],
            "destination": {"kind": "folder", "path": dest}, "bandwidth_limit": 65536})),
    );
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["started_by"], "olga", "{job}");
    let job = job["id"].as_str().unwrap().to_owned();
    state_is(&w, &job, "running");
    let act = |what: &str, id: &str| {
        let (status, body) = olga.call("POST", &format!("/api/v1/jobs/{id}/{what}"), None);
        assert_eq!(status, 200, "{what}: {body}");
    };
    act("pause", &job);
    state_is(&w, &job, "paused");
    act("resume", &job);
    act("cancel", &job);
    state_is(&w, &job, "cancelled");
    // A call that fails changes nothing and writes no row.
    let (status, _) = olga.call("POST", &format!("/api/v1/jobs/{job}/pause"), None);
    assert_eq!(status, 409);
    let (status, rerun) = olga.call("POST", &format!("/api/v1/jobs/{job}/rerun"), None);
    assert_eq!(status, 201, "{rerun}");
    assert_eq!(rerun["started_by"], "olga");
    let rerun = rerun["id"].as_str().unwrap().to_owned();
    act("cancel", &rerun);
    state_is(&w, &rerun, "cancelled");
    for on in [true, false] {
        let body = Some(json!({ "keep_in_sync": on }));
        let (status, b) = olga.call("POST", &format!("/api/v1/jobs/{rerun}/sync"), body);
        assert_eq!(status, 200, "{b}");
    }
    // An operator may not manage destinations: refused, and no row.
    let s3 = json!({"kind": "s3", "name": "Archive", "bucket": "archive",
        "endpoint": "http://127.0.0.1:9", "region": "us-east-1", "path_style": true,
        "access_key_id": "AK", "secret_access_key": "SECRET-never-in-the-trail"});
    assert_eq!(
        olga.call("POST", "/api/v1/destinations", Some(s3.clone()))
            .0,
        403
    );
    assert_eq!(olga.call("DELETE", "/api/v1/session", None).0, 204);

    // The admin token, as a script uses it.
    let (status, d) = w.bifrost.api("POST", "/api/v1/destinations", Some(s3));
    assert_eq!(status, 201, "{d}");
    let d = d["id"].as_str().unwrap().to_owned();
    let patch = json!({"prefix": "2026/", "secret_access_key": "SECRET-never-in-the-trail"});
    let path = format!("/api/v1/destinations/{d}");
    assert_eq!(w.bifrost.api("PATCH", &path, Some(patch)).0, 200);
    assert_eq!(w.bifrost.api("DELETE", &path, None).0, 204);
    let path = format!("/api/v1/connectors/{conn}");
    assert_eq!(w.bifrost.api("DELETE", &path, None).0, 204);
    let prom = json!({"name": "prom", "role": "metrics"});
    let (status, t) = w.bifrost.api("POST", "/api/v1/tokens", Some(prom));
    assert_eq!(status, 201, "{t}");
    let tid = t["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/tokens/{tid}");
    assert_eq!(w.bifrost.api("DELETE", &path, None).0, 204);
    for args in [["reset", "olga"], ["disable", "olga"], ["enable", "olga"]] {
        assert!(w.bifrost.user(&args).status.success(), "{args:?}");
    }
    let root = w.dir.path().join("dest").to_str().unwrap().to_owned();
    let roots = json!({ "allowed_roots": [root] });
    assert_eq!(w.bifrost.api("PUT", "/api/v1/settings", Some(roots)).0, 200);
    let out = Command::new(bin("bifrost"))
        .args(["settings", "allowed-roots", "--clear", "--data"])
        .arg(&w.bifrost.data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(bin("bifrost"))
        .args(["token", "rotate", "--data"])
        .arg(&w.bifrost.data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    w.bifrost.token = text
        .lines()
        .find_map(|l| l.strip_prefix("New admin token: "))
        .unwrap()
        .to_owned();

    let me = String::from_utf8(
        std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let cli = format!("cli:{}|-|local", me.trim());
    let web = "127.0.0.1";
    let olga = format!("olga|operator|{web}");
    let admin = format!("admin token|admin|{web}");
    let expected = vec![
        format!("{admin}|connector.authorize|{conn}|named fs1"),
        format!("{cli}|user.add|olga|role operator"),
        format!("olga|-|{web}|sign_in_failed|-|-"),
        format!("{olga}|sign_in|-|-"),
        format!("{olga}|password.change|-|-"),
        format!("{olga}|connector.rename|{conn}|renamed to fs-main"),
        format!("{olga}|job.create|{job}|-"),
        format!("{olga}|job.pause|{job}|-"),
        format!("{olga}|job.resume|{job}|-"),
        format!("{olga}|job.cancel|{job}|-"),
        format!("{olga}|job.rerun|{rerun}|re-run of {job}"),
        format!("{olga}|job.cancel|{rerun}|-"),
        format!("{olga}|job.sync|{rerun}|keep in sync on"),
        format!("{olga}|job.sync|{rerun}|keep in sync off"),
        format!("{olga}|sign_out|-|-"),
        format!("{admin}|destination.create|{d}|s3 Archive"),
        format!("{admin}|destination.edit|{d}|changed prefix, secret_access_key"),
        format!("{admin}|destination.delete|{d}|-"),
        format!("{admin}|connector.revoke|{conn}|-"),
        format!("{admin}|token.create|{tid}|prom (metrics)"),
        format!("{admin}|token.revoke|{tid}|-"),
        format!("{cli}|user.reset|olga|-"),
        format!("{cli}|user.disable|olga|-"),
        format!("{cli}|user.enable|olga|-"),
        format!("{admin}|settings.edit|allowed_roots|allowed roots: {root}"),
        format!("{cli}|settings.edit|allowed_roots|allowed roots: none (any folder)"),
        format!("{cli}|token.rotate|admin token|0 session(s) ended"),
    ];
    let rows = trail(&w, "");
    assert_eq!(rows, expected);
    assert!(!rows.iter().any(|r| r.contains("SECRET")));

    // Filters, paging and the CSV export.
    let jobs = trail(&w, "?actor=olga&action=job.");
    assert_eq!(jobs.len(), 8, "{jobs:?}");
    assert_eq!(trail(&w, &format!("?target={job}")).len(), 4);
    assert!(trail(&w, "?since=2999-01-01T00:00:00Z").is_empty());
    let (status, page) = w.bifrost.api("GET", "/api/v1/audit?limit=5", None);
    assert_eq!((status, page["rows"].as_array().unwrap().len()), (200, 5));
    let before = page["next_before"].as_i64().unwrap();
    let older = trail(&w, &format!("?before={before}&limit=100"));
    assert_eq!(older.len(), expected.len() - 5);
    for bad in ["?since=yesterday", "?limit=0", "?limit=10001", "?who=olga"] {
        let (status, body) = w.bifrost.api("GET", &format!("/api/v1/audit{bad}"), None);
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, csv) = w.bifrost.api("GET", "/api/v1/audit.csv", None);
    assert_eq!(status, 200);
    let csv = csv.as_str().unwrap().to_owned();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "seq,at,actor,role,addr,action,target,detail");
    assert_eq!(lines.len(), expected.len() + 1);
    assert!(
        lines[lines.len() - 1].contains("\"connector.authorize\""),
        "{csv}"
    );
    assert!(lines[1].contains("\"token.rotate\""), "{csv}");

    // No API changes a row, and the rows outlive the process.
    for method in ["DELETE", "PATCH", "POST"] {
        let body = (method != "DELETE").then(|| json!({"actor": "mallory"}));
        let (status, _) = w.bifrost.api(method, "/api/v1/audit", body);
        assert_eq!(status, 405, "{method}");
    }
    let seq = page["rows"][0]["seq"].as_i64().unwrap();
    let (status, _) = w
        .bifrost
        .api("DELETE", &format!("/api/v1/audit/{seq}"), None);
    assert_eq!(status, 404);
    w.bifrost.restart(&w.ca);
    assert_eq!(trail(&w, ""), expected);
}
