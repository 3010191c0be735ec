//! Bad input gets a clear error and never takes a process down.

use serde_json::json;

use crate::support::{form_encode, World};

#[test]
fn malformed_api_requests_get_400_with_a_message() {
    let mut w = World::new();
    let cases = [
        ("/api/v1/connectors", "application/json", "{not json"),
        ("/api/v1/connectors", "application/json", r#"{"key": 5}"#),
        (
            "/api/v1/connectors",
            "application/json",
            r#"{"key": "a", "extra": 1}"#,
        ),
        ("/api/v1/connectors", "text/plain", r#"{"key": "a"}"#),
        ("/api/v1/jobs", "application/json", r#"{"connector": "x"}"#),
        (
            "/api/v1/jobs",
            "application/json",
            r#"{"connector": "x", "sources": [], "destination": {"kind": "folder", "path": "/tmp/x"}}"#,
        ),
        (
            "/api/v1/jobs",
            "application/json",
            r#"{"connector": "x", "sources": ["/a"], "destination": {"kind": "bucket", "path": "/tmp/x"}}"#,
        ),
        (
            "/api/v1/jobs",
            "application/json",
            r#"{"connector": "x", "sources": ["/a"], "destination": {"kind": "folder", "path": "relative"}}"#,
        ),
    ];
    for (path, ct, body) in cases {
        let (status, reply) = w.bifrost.post_raw(path, ct, body);
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(!reply["error"].as_str().unwrap().is_empty(), "{reply}");
    }
    let (status, reply) = w.bifrost.api(
        "GET",
        &format!("/api/v1/connectors/{}/browse", w.connector),
        None,
    );
    assert_eq!(status, 400, "{reply}");
    let (status, _) = w.bifrost.api("GET", "/api/v1/jobs/nope", None);
    assert_eq!(status, 404);
    let (status, _) = w
        .bifrost
        .api("GET", "/api/v1/connectors/nope/browse?path=/", None);
    assert_eq!(status, 404);
    let (status, _) = w.bifrost.api("GET", "/api/v1/nothing-here", None);
    assert_eq!(status, 404);
    let (status, reply) = w.browse(&w.src("missing/folder"));
    assert_eq!(status, 404, "{reply}");
    let (status, reply) = w.bifrost.api(
        "POST",
        "/api/v1/jobs",
        Some(json!({"connector": w.connector, "sources": [w.src("missing")], "destination": {"kind": "folder", "path": w.dir.path().join("d")}})),
    );
    assert_eq!(status, 404, "{reply}");
    assert!(w.bifrost.alive());
}

#[test]
fn oversized_and_malformed_requests_over_the_tunnel_get_errors() {
    let mut w = World::new();
    // A path far over the protocol's limit.
    let long = format!("{}/{}", w.share.display(), "x".repeat(40_000));
    let (status, reply) = w.browse(&long);
    assert_eq!(status, 400, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("longer than"));
    // A cursor the agent never gave out.
    let (status, reply) = w.bifrost.api(
        "GET",
        &format!(
            "/api/v1/connectors/{}/browse?path={}&cursor=garbage",
            w.connector,
            form_encode(w.share.to_str().unwrap())
        ),
        None,
    );
    assert_eq!(status, 400, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("cursor"));
    // Tunnel upgrades that are wrong in every way.
    let key = "0123456789abcdef0123456789abcdef";
    let cases: [(&[(&str, &str)], u16); 4] = [
        (&[], 400),
        (
            &[
                ("Connection", "upgrade"),
                ("Upgrade", "mover-tunnel"),
                ("x-mover-protocol", "1"),
                ("x-mover-key", "short"),
            ],
            400,
        ),
        (
            &[
                ("Connection", "upgrade"),
                ("Upgrade", "mover-tunnel"),
                ("x-mover-protocol", "99"),
                ("x-mover-key", key),
            ],
            426,
        ),
        (
            &[
                ("Connection", "upgrade"),
                ("Upgrade", "websocket"),
                ("x-mover-protocol", "1"),
                ("x-mover-key", key),
            ],
            400,
        ),
    ];
    for (headers, code) in cases {
        let (status, reply) = w.bifrost.get_with("/tunnel/v1", headers);
        assert_eq!(status, code, "{headers:?}: {reply}");
    }
    let (status, reply) = w.bifrost.get_with(
        "/tunnel/v1",
        &[
            ("Connection", "upgrade"),
            ("Upgrade", "mover-tunnel"),
            ("x-mover-protocol", "0"),
            ("x-mover-key", key),
        ],
    );
    assert_eq!(status, 426);
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("update the agent"),
        "{reply}"
    );
    // Both ends are still up and serving.
    assert!(w.bifrost.alive());
    let (status, _) = w.browse(w.share.to_str().unwrap());
    assert_eq!(status, 200);
    assert!(w.agent.status().contains("authorized as fs1"));
}
