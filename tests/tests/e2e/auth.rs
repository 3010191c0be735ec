//! Keys and authorization: waiting, authorize, unknown keys, one key twice, revoke, reset.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Agent, Bifrost, TestCa, World};

#[test]
fn key_is_made_once_kept_and_reset() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let home = dir.path().join("home");
    let share = dir.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    let mut agent = Agent::start_for(&home, &bifrost, &ca, &share);
    let key = agent.key();
    assert_eq!(key.len(), 32);
    assert!(key
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.join("connector.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let sock = std::fs::metadata(home.join("agent.sock"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(sock & 0o777, 0o600);
    }
    bifrost.wait_connector("waiting", |c| c["state"] == "waiting");
    let id = bifrost.authorize(&key, "fs1")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    agent.wait_status("authorized as fs1", Duration::from_secs(5));
    agent.cli(&["stop"]);
    agent.wait_exit();

    // Same key after a restart, and still authorized.
    let mut agent = Agent::start(&home, &[]);
    assert_eq!(agent.key(), key);
    agent.wait_status("authorized as fs1", Duration::from_secs(10));
    agent.cli(&["stop"]);
    agent.wait_exit();

    // --reset-key: a new key, waiting again; the old connector is retired.
    let mut agent = Agent::start(&home, &["--reset-key"]);
    let new_key = agent.key();
    assert_ne!(new_key, key);
    agent.remember_key();
    // Piped, as a service's output is: the new key's first 4 characters, never all of it.
    let out = agent.stdout.all();
    assert!(out
        .iter()
        .any(|l| l.starts_with(&format!("{}… ", &new_key[..4]))));
    assert!(!out.iter().any(|l| l.contains(&new_key)));
    agent.wait_status("waiting for authorization", Duration::from_secs(10));
    assert!(
        bifrost.connectors().iter().all(|c| c["id"] != id.as_str()),
        "the old connector is gone"
    );
    // The old key can no longer be authorized or used.
    let (status, _) = bifrost.api("POST", "/api/v1/connectors", Some(json!({"key": key})));
    assert_eq!(status, 404);
    agent.cli(&["stop"]);
    agent.wait_exit();
    std::fs::write(home.join("connector.key"), format!("{key}\n")).unwrap();
    let old = Agent::start(&home, &[]);
    old.wait_status("revoked by Bifrost", Duration::from_secs(10));
    // Bifrost keeps only hashes: its log never shows a key.
    let log = bifrost.stderr.all().join("\n");
    assert!(!log.contains(&key) && !log.contains(&new_key));
}

#[test]
fn waiting_authorize_unknown_and_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let share = dir.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    let agent = Agent::start_for(&dir.path().join("home"), &bifrost, &ca, &share);
    let waiting = bifrost.wait_connector("the agent to wait", |c| c["state"] == "waiting");
    // Nothing is served before authorization.
    let (status, body) = bifrost.api(
        "GET",
        &format!(
            "/api/v1/connectors/{}/browse?path=/",
            waiting["id"].as_str().unwrap()
        ),
        None,
    );
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("waiting for authorization"));

    let (status, body) = bifrost.api(
        "POST",
        "/api/v1/connectors",
        Some(json!({"key": "0123456789abcdef0123456789abcdef"})),
    );
    assert_eq!(status, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no agent is waiting with this key"),
        "{body}"
    );
    let (status, body) = bifrost.api(
        "POST",
        "/api/v1/connectors",
        Some(json!({"key": "not-a-key"})),
    );
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("32 hexadecimal"),
        "{body}"
    );

    // Pasted with spaces around it: trimmed. Takes effect on the live tunnel within a second.
    let started = Instant::now();
    let c = bifrost.authorize(&format!("  {}\n", agent.key()), "");
    agent.wait_status("authorized as", Duration::from_secs(1));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(c["state"], "online");
    assert_eq!(c["version"], env!("CARGO_PKG_VERSION"));
    assert!(c["os"].as_str().unwrap().starts_with(std::env::consts::OS));
    assert!(!c["host"].as_str().unwrap().is_empty());
    assert_eq!(c["name"], c["host"], "the name defaults to the host name");
    let (status, _) = bifrost.api(
        "POST",
        "/api/v1/connectors",
        Some(json!({"key": agent.key()})),
    );
    assert_eq!(status, 409, "a key authorized twice");
    let (status, body) = bifrost.api(
        "PATCH",
        &format!("/api/v1/connectors/{}", c["id"].as_str().unwrap()),
        Some(json!({"name": "HR"})),
    );
    assert_eq!(status, 200, "{body}");
    agent.wait_status("authorized as HR", Duration::from_secs(5));
}

#[test]
fn two_agents_with_one_key_the_newer_wins() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let (share_a, share_b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&share_a).unwrap();
    std::fs::create_dir_all(&share_b).unwrap();
    let a = Agent::start_for(&dir.path().join("home-a"), &bifrost, &ca, &share_a);
    let c = bifrost.authorize(&a.key(), "fs1");
    a.wait_status("authorized as fs1", Duration::from_secs(5));
    let home_b = dir.path().join("home-b");
    std::fs::create_dir_all(&home_b).unwrap();
    std::fs::copy(a.home.join("connector.key"), home_b.join("connector.key")).unwrap();
    let b = Agent::start_for(&home_b, &bifrost, &ca, &share_b);
    b.wait_status("authorized as fs1", Duration::from_secs(10));
    a.wait_status(
        "another agent with this key connected",
        Duration::from_secs(5),
    );
    let id = c["id"].as_str().unwrap();
    let now = bifrost.wait_connector("the newer agent's shares", |x| {
        x["id"] == id && x["roots"][0] == share_b.to_str().unwrap()
    });
    assert_eq!(now["state"], "online");
    // The older agent stays out of the way rather than taking the key back.
    std::thread::sleep(Duration::from_secs(3));
    assert!(b.status().contains("authorized as fs1"));
    assert!(a.status().contains("Mover Agent Status: offline"));
}

#[test]
fn revoking_drops_the_tunnel() {
    let w = World::new();
    let started = Instant::now();
    let (status, _) = w.bifrost.api(
        "DELETE",
        &format!("/api/v1/connectors/{}", w.connector),
        None,
    );
    assert_eq!(status, 204);
    let status = w
        .agent
        .wait_status("revoked by Bifrost", Duration::from_secs(5));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(status.contains("Mover Agent Status: offline"), "{status}");
    assert!(
        w.bifrost.connectors().is_empty(),
        "a revoked connector leaves the list"
    );
    let (status, _) = w.bifrost.api(
        "GET",
        &format!("/api/v1/connectors/{}/browse?path=/", w.connector),
        None,
    );
    assert_eq!(status, 404);
    // It stays revoked across reconnects.
    std::thread::sleep(Duration::from_secs(2));
    assert!(w.agent.status().contains("revoked by Bifrost"));
}
