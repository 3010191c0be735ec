//! Accounts: a user the CLI adds signs in with a one-time password and must change it; sessions
//! idle out and age out; disabling or resetting a user ends their sessions and event streams at
//! once; failed sign-ins are limited per account and per address; the admin token still signs
//! in; passwords never show in Bifrost's output or on a command line.

use std::io::{BufRead, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{one_time_password, Bifrost, Session, TestCa};

const NEW: &str = "a long new password 17";

fn started() -> (tempfile::TempDir, TestCa, Bifrost) {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    (dir, ca, bifrost)
}

/// A user added with `role`, signed in, with the password changed to [`NEW`].
fn active_user(bifrost: &Bifrost, name: &str, role: &str) -> Session {
    let otp = bifrost.user_add(name, role);
    let s = bifrost.sign_in(name, &otp);
    let (status, body) = s.change_password(&otp, NEW);
    assert_eq!(status, 200, "{body}");
    s
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_user_from_the_cli_signs_in_changes_the_one_time_password_and_works() {
    let (_dir, _ca, bifrost) = started();
    let otp = bifrost.user_add("alice", "operator");
    assert!(otp.len() >= 20, "{otp}");
    let s = bifrost.sign_in("alice", &otp);
    let (status, me) = s.call("GET", "/api/v1/session", None);
    assert_eq!(status, 200);
    assert_eq!(
        (&me["name"], &me["role"], &me["must_change"]),
        (&json!("alice"), &json!("operator"), &json!(true)),
        "{me}"
    );
    // Until the password is changed, nothing else.
    let (status, body) = s.call("GET", "/api/v1/connectors", None);
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("new password"),
        "{body}"
    );
    let (status, body) = s.change_password(&otp, "too short");
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("12 characters"),
        "{body}"
    );
    let (status, _) = s.change_password("not the current one", NEW);
    assert_eq!(status, 401);
    let (status, me) = s.change_password(&otp, NEW);
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["must_change"], false);
    let (status, body) = s.call("GET", "/api/v1/connectors", None);
    assert_eq!(status, 200, "{body}");

    // The one-time password is spent; the new one works, with nothing left to change.
    let (status, _, _) = bifrost.sign_in_with(json!({"name": "alice", "password": otp}));
    assert_eq!(status, 401);
    let (status, me, _) = bifrost.sign_in_with(json!({"name": "ALICE", "password": NEW}));
    assert_eq!((status, &me["must_change"]), (200, &json!(false)), "{me}");
    let list = stdout(&bifrost.user(&["list"]));
    let line = list.lines().find(|l| l.starts_with("alice ")).unwrap();
    assert!(
        line.contains("operator") && line.contains("active"),
        "{list}"
    );

    // The CLI refuses a taken name and an unknown role.
    let again = bifrost.user(&["add", "Alice", "--role", "viewer"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already an account"));
    assert!(!bifrost
        .user(&["add", "x", "--role", "root"])
        .status
        .success());

    // A must-change user may still sign out.
    let bob = bifrost.user_add("bob", "viewer");
    let b = bifrost.sign_in("bob", &bob);
    assert_eq!(b.call("DELETE", "/api/v1/session", None).0, 204);

    // Passwords never show in Bifrost's output, nor on any command line.
    bifrost.connectors();
    for l in bifrost.stdout.all().iter().chain(&bifrost.stderr.all()) {
        for secret in [otp.as_str(), NEW, bob.as_str()] {
            assert!(!l.contains(secret), "a password was printed: {l}");
        }
    }
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline);
            assert!(
                !cmdline.contains(&otp) && !cmdline.contains(NEW),
                "{cmdline}"
            );
        }
    }
}

#[test]
fn sessions_end_when_idle_and_at_their_maximum_age() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let data = dir.path().join("bifrost-data");
    let extra = ["--session-idle", "2s", "--session-max", "6s"];
    let bifrost = Bifrost::spawn_with(&data, "127.0.0.1:0", Some(&ca), &extra);

    // Idle: unused for over 2 s.
    let s = active_user(&bifrost, "idle", "viewer");
    assert_eq!(s.call("GET", "/api/v1/jobs", None).0, 200);
    std::thread::sleep(Duration::from_millis(4_500));
    let (status, body) = s.call("GET", "/api/v1/jobs", None);
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("session has ended"));
    assert_eq!(s.call("GET", "/api/v1/session", None).1["signed_in"], false);

    // Maximum age: busy all along (a call every 0.7 s), it still ends after 6 s. A session
    // of the admin token, which ages like any.
    let (_, _, t) = bifrost.sign_in_with(json!({"token": bifrost.token}));
    let (t, signed_in) = (t.unwrap(), Instant::now());
    let ended = loop {
        let status = t.call("GET", "/api/v1/jobs", None).0;
        let age = signed_in.elapsed();
        if status != 200 {
            break (status, age);
        }
        assert!(
            age < Duration::from_secs(9),
            "the session outlived its maximum"
        );
        std::thread::sleep(Duration::from_millis(700));
    };
    assert_eq!(ended.0, 401);
    assert!(
        ended.1 > Duration::from_secs(5),
        "ended after {:?}",
        ended.1
    );
}

#[test]
fn disabling_a_user_ends_their_session_and_event_stream_at_once() {
    let (_dir, _ca, bifrost) = started();
    let s = active_user(&bifrost, "bob", "operator");
    let res = bifrost
        .client()
        .get(&format!("{}/api/v1/events", bifrost.url))
        .header("Cookie", &s.cookie)
        .call()
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(res.into_body().into_reader()).lines() {
            match line {
                Ok(l) if l.starts_with("event: ") => tx.send("event").unwrap(),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = tx.send("ended");
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "event");

    let out = bifrost.user(&["disable", "bob"]);
    assert!(stdout(&out).contains("1 session(s) ended"), "{out:?}");
    let disabled = Instant::now();
    let (status, body) = s.call("GET", "/api/v1/connectors", None);
    assert_eq!(status, 401, "the very next call: {body}");
    loop {
        match rx.recv_timeout(Duration::from_secs(10)).unwrap() {
            "ended" => break,
            _ => continue,
        }
    }
    assert!(disabled.elapsed() < Duration::from_secs(5));
    let (status, body, _) = bifrost.sign_in_with(json!({"name": "bob", "password": NEW}));
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("disabled"));
    assert!(stdout(&bifrost.user(&["list"])).contains("disabled"));
    assert!(bifrost.user(&["enable", "bob"]).status.success());
    bifrost.sign_in("bob", NEW);
}

#[test]
fn resetting_a_password_ends_sessions_and_asks_for_a_new_one() {
    let (_dir, _ca, bifrost) = started();
    let s = active_user(&bifrost, "carol", "admin");
    let out = bifrost.user(&["reset", "carol"]);
    let otp = one_time_password(&out);
    assert!(stdout(&out).contains("1 session(s) ended"));
    assert_eq!(s.call("GET", "/api/v1/jobs", None).0, 401);
    let (status, _, _) = bifrost.sign_in_with(json!({"name": "carol", "password": NEW}));
    assert_eq!(status, 401, "the old password is gone");
    let (status, me, _) = bifrost.sign_in_with(json!({"name": "carol", "password": otp}));
    assert_eq!((status, &me["must_change"]), (200, &json!(true)), "{me}");
    assert!(!bifrost.user(&["reset", "nobody"]).status.success());
}

fn retry_after(bifrost: &Bifrost, name: &str, password: &str) -> (u16, String, Option<u64>) {
    let mut res = bifrost
        .client()
        .post(&format!("{}/api/v1/session", bifrost.url))
        .send_json(json!({"name": name, "password": password}))
        .unwrap();
    let retry = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body = res.body_mut().read_to_string().unwrap();
    (res.status().as_u16(), body, retry)
}

#[test]
fn failed_sign_ins_are_limited_per_account() {
    let (_dir, _ca, bifrost) = started();
    let otp = bifrost.user_add("dave", "viewer");
    let erin = bifrost.user_add("erin", "viewer");
    for i in 0..5 {
        let (status, body, _) = retry_after(&bifrost, "dave", &format!("guess number {i}"));
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("wrong name or password"), "{body}");
    }
    // Past the limit even the right password waits: a guesser learns nothing.
    let (status, body, retry) = retry_after(&bifrost, "dave", &otp);
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("for this account"), "{body}");
    assert!((1..=900).contains(&retry.unwrap()));
    // Other accounts, and the admin token, are not held up.
    bifrost.sign_in("erin", &erin);
    assert_eq!(bifrost.api("GET", "/api/v1/jobs", None).0, 200);
    // An unknown name is answered as a wrong password is.
    let (status, body, _) = retry_after(&bifrost, "nobody", "whatever it is");
    assert_eq!(status, 401);
    assert!(body.contains("wrong name or password"), "{body}");
}

#[test]
fn failed_sign_ins_are_limited_per_address() {
    let (_dir, _ca, bifrost) = started();
    let otp = bifrost.user_add("frank", "viewer");
    // One guess for each of many names: no account reaches its limit, the address does. (On
    // a slow machine the bucket may earn a guess back meanwhile: guess until refused.)
    let mut allowed = 0;
    loop {
        let (status, body, _) = retry_after(&bifrost, &format!("guess{allowed}"), "some password");
        if status == 429 {
            assert!(body.contains("from this address"), "{body}");
            break;
        }
        assert_eq!(status, 401, "attempt {allowed}: {body}");
        allowed += 1;
        assert!(allowed <= 13, "no limit after {allowed} wrong passwords");
    }
    assert!(allowed >= 10, "refused after {allowed} wrong passwords");
    let (status, body, retry) = retry_after(&bifrost, "frank", &otp);
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("from this address"), "{body}");
    assert!(retry.is_some());
    // The address's wrong passwords and wrong tokens share one limit.
    assert_eq!(bifrost.api("GET", "/api/v1/jobs", None).0, 429);
}

#[test]
fn the_admin_token_still_signs_in_as_admin() {
    let (_dir, _ca, bifrost) = started();
    let (status, me, t) = bifrost.sign_in_with(json!({"token": bifrost.token}));
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        (&me["name"], &me["role"]),
        (&json!("admin token"), &json!("admin"))
    );
    let t = t.unwrap();
    assert_eq!(t.call("GET", "/api/v1/connectors", None).0, 200);
    assert_eq!(
        t.change_password("x", NEW).0,
        409,
        "the token has no password"
    );
    let both = json!({"name": "x", "password": "y", "token": bifrost.token});
    assert_eq!(bifrost.sign_in_with(both).0, 400);
}

#[test]
fn only_the_data_folders_owner_may_manage_accounts() {
    let (_dir, _ca, bifrost) = started();
    let me = std::process::Command::new("id").arg("-u").output().unwrap();
    if stdout(&me).trim() != "0" {
        eprintln!("skipped: only root can give the data folder to another user here");
        return;
    }
    let chown = |owner: &str| {
        let status = std::process::Command::new("chown")
            .arg(owner)
            .arg(&bifrost.data)
            .status()
            .unwrap();
        assert!(status.success());
    };
    chown("65534");
    let out = bifrost.user(&["list"]);
    chown("0");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sudo -u "), "{err}");
    assert!(err.contains(" bifrost user list --data "), "{err}");
    assert!(bifrost.user(&["list"]).status.success());
}
