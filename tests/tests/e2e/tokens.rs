//! API tokens: an admin makes one (shown once), it works as a bearer token and for sign-in with
//! its role, the list shows its last use and never its secret, revoking it ends it and its
//! sessions at once, it expires; `bifrost token rotate` replaces the admin token under a running
//! Bifrost; only admins manage tokens.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{bin, Bifrost, TestCa};

fn started() -> (tempfile::TempDir, TestCa, Bifrost) {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    (dir, ca, bifrost)
}

/// Makes a token as the admin; returns its answer (which must be 201).
fn create(bifrost: &Bifrost, body: Value) -> Value {
    let (status, made) = bifrost.api("POST", "/api/v1/tokens", Some(body));
    assert_eq!(status, 201, "{made}");
    made
}

fn secret(made: &Value) -> String {
    made["token"].as_str().unwrap().to_owned()
}

/// `bifrost token ARGS --data DATA`.
fn token_cmd(bifrost: &Bifrost, args: &[&str]) -> Output {
    Command::new(bin("bifrost"))
        .arg("token")
        .args(args)
        .arg("--data")
        .arg(&bifrost.data)
        .output()
        .unwrap()
}

/// Opens `/api/v1/events` with bearer `token`; the receiver gets `event` for each event and
/// `ended` when the stream ends.
fn event_stream(bifrost: &Bifrost, token: &str) -> mpsc::Receiver<&'static str> {
    let res = bifrost
        .client()
        .get(&format!("{}/api/v1/events", bifrost.url))
        .header("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(res.into_body().into_reader()).lines() {
            match line {
                Ok(l) if l.starts_with("event: ") => {
                    let _ = tx.send("event");
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = tx.send("ended");
    });
    rx
}

/// Waits (up to 10 s at a time) for the stream to end.
fn wait_ended(rx: &mpsc::Receiver<&'static str>) {
    while rx.recv_timeout(Duration::from_secs(10)).unwrap() != "ended" {}
}

/// Whether Bifrost printed or logged `secret` anywhere.
fn printed(bifrost: &Bifrost, secret: &str) -> bool {
    let (out, err) = (bifrost.stdout.all(), bifrost.stderr.all());
    out.iter().chain(&err).any(|l| l.contains(secret))
}

#[test]
fn tokens_are_made_used_listed_and_revoked() {
    let (_dir, _ca, bifrost) = started();
    let made = create(&bifrost, json!({"name": "ci", "role": "operator"}));
    let token = secret(&made);
    let id = made["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("bft_") && token.len() == 68, "{token}");
    assert_eq!(
        (
            &made["name"],
            &made["role"],
            &made["expires"],
            &made["last_used"]
        ),
        (&json!("ci"), &json!("operator"), &Value::Null, &Value::Null),
        "{made}"
    );
    assert_eq!(made["created_by"], "admin token");

    let (status, body) = bifrost.request("GET", "/api/v1/jobs", None, Some(&token));
    assert_eq!(status, 200, "{body}");
    // A console sign-in with the token acts with its name and role.
    let (status, me, s) = bifrost.sign_in_with(json!({"token": token}));
    assert_eq!(status, 200, "{me}");
    assert_eq!(
        (&me["name"], &me["role"]),
        (&json!("token:ci"), &json!("operator"))
    );
    let s = s.unwrap();
    assert_eq!(s.call("GET", "/api/v1/connectors", None).0, 200);

    // The list: its last use, never a secret, never the admin token.
    let (status, list) = bifrost.api("GET", "/api/v1/tokens", None);
    assert_eq!(status, 200, "{list}");
    let listed = list.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{list}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(listed[0]["last_used"].is_string(), "{list}");
    assert_eq!(listed[0]["revoked"], false);
    assert!(listed[0].get("token").is_none(), "{list}");
    let text = list.to_string();
    assert!(
        !text.contains(&token) && !text.contains(&bifrost.token),
        "{text}"
    );

    // Revoked: the next call and the token's session get 401 at once, and its event stream
    // ends; the row stays listed.
    let stream = event_stream(&bifrost, &token);
    assert_eq!(
        stream.recv_timeout(Duration::from_secs(10)).unwrap(),
        "event"
    );
    let (status, body) = bifrost.api("DELETE", &format!("/api/v1/tokens/{id}"), None);
    assert_eq!(status, 204, "{body}");
    let revoked = Instant::now();
    let (status, body) = bifrost.request("GET", "/api/v1/jobs", None, Some(&token));
    assert_eq!(status, 401, "{body}");
    assert_eq!(s.call("GET", "/api/v1/connectors", None).0, 401);
    let (status, me, _) = bifrost.sign_in_with(json!({"token": token}));
    assert_eq!(status, 401, "{me}");
    let (_, list) = bifrost.api("GET", "/api/v1/tokens", None);
    assert_eq!(list[0]["revoked"], true, "{list}");
    wait_ended(&stream);
    assert!(revoked.elapsed() < Duration::from_secs(5));

    // Unknown ids, and the admin token, which the API cannot revoke.
    for other in ["0123456789abcdef", "bootstrap", "..%2F..", &"f".repeat(300)] {
        let (status, body) = bifrost.api("DELETE", &format!("/api/v1/tokens/{other}"), None);
        assert_eq!(status, 404, "{other}: {body}");
    }
    assert_eq!(bifrost.api("GET", "/api/v1/jobs", None).0, 200);
    assert!(!printed(&bifrost, &token), "the token was printed");
    assert!(
        !printed(&bifrost, &bifrost.token),
        "the admin token was printed"
    );
}

#[test]
fn token_requests_are_checked() {
    let (_dir, _ca, bifrost) = started();
    let long = "n".repeat(65);
    for (body, says) in [
        (
            json!({"name": "old", "role": "viewer", "expires": "2020-01-01T00:00:00Z"}),
            "has passed",
        ),
        (
            json!({"name": "d", "role": "viewer", "expires": "90d"}),
            "RFC 3339",
        ),
        (json!({"name": "", "role": "viewer"}), "cannot be empty"),
        (json!({"name": long, "role": "viewer"}), "at most 64"),
        (json!({"name": "a b", "role": "viewer"}), "only letters"),
        (json!({"name": "x", "role": "root"}), "unknown variant"),
        (
            json!({"name": "x", "role": "viewer", "scope": "*"}),
            "unknown field",
        ),
        (
            json!({"name": "x", "role": "viewer", "expires": 90}),
            "malformed",
        ),
        (json!({"role": "viewer"}), "missing field"),
    ] {
        let (status, answer) = bifrost.api("POST", "/api/v1/tokens", Some(body.clone()));
        assert_eq!(status, 400, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(says), "{body}: {error}");
    }
    let (status, list) = bifrost.api("GET", "/api/v1/tokens", None);
    assert_eq!((status, list), (200, json!([])));
}

#[test]
fn an_expired_token_is_refused() {
    let (_dir, _ca, bifrost) = started();
    let expires = time::OffsetDateTime::now_utc() + Duration::from_secs(3);
    let text = expires
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let made = create(
        &bifrost,
        json!({"name": "brief", "role": "viewer", "expires": text}),
    );
    assert_eq!(
        made["expires"],
        expires
            .replace_nanosecond(0)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    );
    let token = secret(&made);
    assert_eq!(
        bifrost.request("GET", "/api/v1/jobs", None, Some(&token)).0,
        200
    );
    // Past the second it names (Bifrost counts whole seconds), it is refused.
    let past = expires + Duration::from_millis(1200) - time::OffsetDateTime::now_utc();
    std::thread::sleep(Duration::try_from(past).unwrap_or_default());
    let (status, body) = bifrost.request("GET", "/api/v1/jobs", None, Some(&token));
    assert_eq!(status, 401, "{body}");
    let (_, list) = bifrost.api("GET", "/api/v1/tokens", None);
    assert_eq!(list[0]["revoked"], false, "expired, not revoked: {list}");
}

#[test]
fn rotate_ends_the_old_admin_token_and_its_sessions_at_once() {
    let (_dir, _ca, bifrost) = started();
    let old = bifrost.token.clone();
    let (status, me, console) = bifrost.sign_in_with(json!({"token": old}));
    assert_eq!(status, 200, "{me}");
    let console = console.unwrap();
    assert_eq!(console.call("GET", "/api/v1/jobs", None).0, 200);
    let api_token = secret(&create(
        &bifrost,
        json!({"name": "prometheus", "role": "metrics"}),
    ));

    let out = token_cmd(&bifrost, &["rotate"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new = stdout
        .lines()
        .find_map(|l| l.strip_prefix("New admin token: "))
        .unwrap_or_else(|| panic!("no new token in {stdout}"))
        .to_owned();
    assert!(
        stdout.contains("1 session(s) made with it ended"),
        "{stdout}"
    );
    let file = std::fs::read_to_string(bifrost.data.join("admin.token")).unwrap();
    assert_eq!(file.trim(), new);
    assert!(new.starts_with("bft_") && new != old, "{new}");

    // The running Bifrost takes it at once: no restart.
    let (status, body) = bifrost.request("GET", "/api/v1/jobs", None, Some(&old));
    assert_eq!(status, 401, "{body}");
    assert_eq!(console.call("GET", "/api/v1/jobs", None).0, 401);
    let (status, body) = bifrost.request("GET", "/api/v1/jobs", None, Some(&new));
    assert_eq!(status, 200, "{body}");
    // API tokens are not touched by a rotate.
    let (status, _) = bifrost.request("GET", "/metrics", None, Some(&api_token));
    assert_eq!(status, 200);

    let list = token_cmd(&bifrost, &["list"]);
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(list.status.success(), "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l.contains(" prometheus ") && l.contains(" live ")),
        "{listed}"
    );
    assert_eq!(
        listed.lines().count(),
        2,
        "the header and one token: {listed}"
    );
    assert!(!listed.contains(&new) && !listed.contains(&api_token));
    assert!(!printed(&bifrost, &new), "the new admin token was logged");
}

#[test]
fn only_admins_manage_tokens() {
    let (_dir, _ca, bifrost) = started();
    let body = json!({"name": "mine", "role": "admin"});
    let otp = bifrost.user_add("vera", "viewer");
    let vera = bifrost.sign_in("vera", &otp);
    let (status, answer) = vera.change_password(&otp, "a long new password 17");
    assert_eq!(status, 200, "{answer}");
    // The viewer may read jobs (so what follows is about her role, not her password) ...
    assert_eq!(vera.call("GET", "/api/v1/jobs", None).0, 200);
    // ... but not make, list or revoke tokens, whatever she sends.
    for (method, path, sent) in [
        ("POST", "/api/v1/tokens", Some(body.clone())),
        ("POST", "/api/v1/tokens", Some(json!({"garbage": true}))),
        ("GET", "/api/v1/tokens", None),
        ("DELETE", "/api/v1/tokens/0123456789abcdef", None),
    ] {
        let (status, answer) = vera.call(method, path, sent);
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("this needs admin"),
            "{answer}"
        );
    }

    // A viewer token alike.
    let viewer = secret(&create(&bifrost, json!({"name": "dash", "role": "viewer"})));
    assert_eq!(
        bifrost
            .request("GET", "/api/v1/jobs", None, Some(&viewer))
            .0,
        200
    );
    for (method, sent) in [("POST", Some(body.clone())), ("GET", None)] {
        let (status, answer) = bifrost.request(method, "/api/v1/tokens", sent, Some(&viewer));
        assert_eq!(status, 403, "{method}: {answer}");
    }
    // An admin token may.
    let admin = secret(&create(&bifrost, json!({"name": "ops", "role": "admin"})));
    let (status, made) = bifrost.request("POST", "/api/v1/tokens", Some(body), Some(&admin));
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["created_by"], "token:ops");
    let (_, list) = bifrost.api("GET", "/api/v1/tokens", None);
    assert_eq!(list.as_array().unwrap().len(), 3, "{list}");
}
