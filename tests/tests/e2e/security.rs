//! Security: path rules, certificate pinning, the admin token, the proxy path.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use crate::support::{form_encode, Agent, Bifrost, TestCa, World};

#[test]
fn paths_outside_the_rules_are_refused() {
    let w = World::new();
    let outside = w.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), "secret").unwrap();
    std::fs::create_dir_all(w.share.join("in")).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&outside, w.share.join("escape")).unwrap();
    let share = w.share.to_str().unwrap();
    let cases = [
        ("relative/path".to_owned(), 403, "not absolute"),
        (format!("{share}/in/../../outside"), 403, "'..'"),
        (
            outside.to_str().unwrap().to_owned(),
            403,
            "outside the shared folders",
        ),
        (format!("{share}/missing"), 404, "does not exist"),
        (format!("{share}/in\0x"), 400, "NUL"),
    ];
    for (path, code, text) in cases {
        let (status, body) = w.browse(&path);
        assert_eq!(status, code, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(text),
            "{path}: {body}"
        );
    }
    #[cfg(unix)]
    {
        let (status, body) = w.browse(&format!("{share}/escape"));
        assert_eq!(status, 403, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains("symbolic link"),
            "{body}"
        );
        let (status, _) = w.browse(&format!("{share}/escape/secret.txt"));
        assert_eq!(status, 403);
        // A job cannot read through it either.
        let (status, body) = w.bifrost.api(
            "POST",
            "/api/v1/jobs",
            Some(serde_json::json!({"connector": w.connector, "sources": [format!("{share}/escape/secret.txt")], "destination": {"kind": "folder", "path": w.dir.path().join("d")}})),
        );
        assert_eq!(status, 403, "{body}");
    }
}

#[test]
fn a_wrong_fingerprint_is_refused_and_the_right_one_works() {
    let dir = tempfile::tempdir().unwrap();
    // Bifrost's own self-signed certificate: the fingerprint it prints is the one to pin.
    let bifrost = Bifrost::spawn(&dir.path().join("data"), "127.0.0.1:0", None);
    assert_eq!(bifrost.fingerprint.len(), 95);
    assert!(bifrost.fingerprint.split(':').all(|p| p.len() == 2
        && p.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())));
    assert!(bifrost
        .stdout
        .all()
        .iter()
        .any(|l| l.starts_with("Admin token: ")));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("data/admin.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let wrong = "00".repeat(32);
    let agent = Agent::start(
        &dir.path().join("home"),
        &["--relay", &bifrost.url, "--relay-fingerprint", &wrong],
    );
    let status = agent.wait_status("certificate rejected", Duration::from_secs(10));
    assert!(
        status.contains("Mover Agent Status: offline\ncertificate rejected: fingerprint"),
        "{status}"
    );
    assert!(bifrost.connectors().is_empty());
    drop(agent);
    // Lower case without colons pins the same certificate.
    let pin = bifrost.fingerprint.replace(':', "").to_lowercase();
    let agent = Agent::start(
        &dir.path().join("home"),
        &["--relay", &bifrost.url, "--relay-fingerprint", &pin],
    );
    agent.wait_status("waiting for authorization", Duration::from_secs(10));
    drop(agent);
    // A CA the certificate does not chain to is refused too.
    let other = TestCa::new(dir.path());
    let agent = Agent::start(
        &dir.path().join("home"),
        &[
            "--relay",
            &bifrost.url,
            "--relay-ca",
            other.ca_file.to_str().unwrap(),
        ],
    );
    agent.wait_status("certificate rejected", Duration::from_secs(10));

    // The token and certificate are reused on the next start; no new token is printed.
    drop(agent);
    let fp = bifrost.fingerprint.clone();
    drop(bifrost);
    let again = Bifrost::spawn(&dir.path().join("data"), "127.0.0.1:0", None);
    assert_eq!(again.fingerprint, fp);
    std::thread::sleep(Duration::from_millis(300));
    assert!(!again
        .stdout
        .all()
        .iter()
        .any(|l| l.starts_with("Admin token: ")));
}

#[test]
fn the_api_needs_the_admin_token() {
    let w = World::new();
    for token in [None, Some("wrong")] {
        for path in [
            "/api/v1/connectors",
            "/api/v1/jobs",
            &format!("/api/v1/connectors/{}/browse?path=/", w.connector),
        ] {
            let (status, body) = w.bifrost.request("GET", path, None, token);
            assert_eq!(status, 401, "{path}: {body}");
            assert!(body["error"].is_string());
        }
    }
    let (status, _) = w.bifrost.request(
        "DELETE",
        &format!("/api/v1/connectors/{}", w.connector),
        None,
        None,
    );
    assert_eq!(status, 401);
    assert_eq!(w.bifrost.connectors().len(), 1);
}

/// A minimal HTTP CONNECT proxy that records what it was asked.
fn proxy() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(client.try_clone().unwrap());
                let mut head = Vec::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push(line.trim_end().to_owned());
                }
                let target = head[0].split_whitespace().nth(1).unwrap().to_owned();
                log.lock().unwrap().extend(head);
                let upstream = TcpStream::connect(&target).unwrap();
                let mut c = client;
                c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let (mut c2, mut u2) = (c.try_clone().unwrap(), upstream.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut reader.buffer().chain(&mut u2), &mut c2);
                });
                let mut upstream = upstream;
                let _ = std::io::copy(&mut c, &mut upstream);
            });
        }
    });
    (port, seen)
}

#[test]
fn the_agent_goes_through_an_https_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let (port, seen) = proxy();
    let agent = Agent::start_env(
        &dir.path().join("home"),
        &[
            "--relay",
            &bifrost.url,
            "--relay-ca",
            ca.ca_file.to_str().unwrap(),
        ],
        &[(
            "HTTPS_PROXY",
            &format!("http://user:pa%3Ass@127.0.0.1:{port}"),
        )],
    );
    agent.wait_status("waiting for authorization", Duration::from_secs(10));
    let head = seen.lock().unwrap().clone();
    assert_eq!(head[0], format!("CONNECT {} HTTP/1.1", bifrost.addr));
    // user:pa:ss, base64.
    assert!(
        head.iter()
            .any(|l| l == "Proxy-Authorization: Basic dXNlcjpwYTpzcw=="),
        "{head:?}"
    );
    let _ = form_encode("");
}

/// A service has no login environment: the proxy in its config file is used, and wins over
/// the environment's.
#[test]
fn the_proxy_in_the_config_file_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let (port, seen) = proxy();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("config.toml"),
        format!("proxy = \"http://svc:pw@127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let agent = Agent::start_env(
        &home,
        &[
            "--relay",
            &bifrost.url,
            "--relay-ca",
            ca.ca_file.to_str().unwrap(),
        ],
        // Unreachable: were it used, the agent would not get through.
        &[("HTTPS_PROXY", "http://127.0.0.1:9")],
    );
    agent.wait_status("waiting for authorization", Duration::from_secs(10));
    let head = seen.lock().unwrap().clone();
    assert_eq!(head[0], format!("CONNECT {} HTTP/1.1", bifrost.addr));
    // svc:pw, base64.
    assert!(
        head.iter()
            .any(|l| l == "Proxy-Authorization: Basic c3ZjOnB3"),
        "{head:?}"
    );
    // The config keeps the proxy for later starts, and the log never shows its password.
    let config = std::fs::read_to_string(home.join("config.toml")).unwrap();
    assert!(config.contains("proxy = "), "{config}");
    assert!(!agent.logs().contains("svc:pw"));
}

#[test]
fn without_shares_the_root_is_browsable() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let agent = Agent::start(
        &dir.path().join("home"),
        &[
            "--relay",
            &bifrost.url,
            "--relay-ca",
            ca.ca_file.to_str().unwrap(),
        ],
    );
    let id = bifrost.authorize(&agent.key(), "all")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, page) = bifrost.api(
        "GET",
        &format!("/api/v1/connectors/{id}/browse?path=/"),
        None,
    );
    assert_eq!(status, 200, "{page}");
    let names: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"tmp") && names.contains(&"usr"),
        "{names:?}"
    );
    // Relative paths and `..` are refused here too.
    let (status, _) = bifrost.api(
        "GET",
        &format!("/api/v1/connectors/{id}/browse?path=tmp"),
        None,
    );
    assert_eq!(status, 403);
    let (status, _) = bifrost.api(
        "GET",
        &format!("/api/v1/connectors/{id}/browse?path=/tmp/../etc"),
        None,
    );
    assert_eq!(status, 403);
}
