//! The role × route table: every operation in Bifrost's OpenAPI description (made from the
//! route table) is called anonymously and as a viewer, an operator, an admin and a metrics
//! account. Anonymous calls get 401 outside the public routes; a role the table does not allow
//! gets 403; a role it allows gets past the guard: 2xx for every read of a real item, and for a
//! change (sent with a made-up id or an empty body, so nothing is changed) the handler's own
//! 400 or 404, never 401, 403 or 5xx.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{form_encode, Bifrost, Session, World};

const NEW: &str = "a long new password 17";
/// The id sent to changes: well-formed, and no item has it.
const MADE_UP: &str = "0123456789abcdef";

/// A signed-in account with `role`, its one-time password already changed.
fn account(bifrost: &Bifrost, role: &str) -> Session {
    let name = format!("{role}-1");
    let otp = bifrost.user_add(&name, role);
    let s = bifrost.sign_in(&name, &otp);
    let (status, body) = s.change_password(&otp, NEW);
    assert_eq!(status, 200, "{body}");
    s
}

/// Calls `method path` as `who` (anonymous when `None`); a stream's body is not read.
fn call(
    bifrost: &Bifrost,
    who: Option<&Session>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, String) {
    fn with<B>(r: ureq::RequestBuilder<B>, who: Option<&Session>) -> ureq::RequestBuilder<B> {
        match who {
            Some(s) => r
                .header("Cookie", &s.cookie)
                .header("X-CSRF-Token", &s.csrf),
            None => r,
        }
    }
    let http = bifrost.client();
    let url = format!("{}{path}", bifrost.url);
    let body = body.unwrap_or(json!({}));
    let result = match method {
        "get" => with(http.get(&url), who).call(),
        "delete" => with(http.delete(&url), who).call(),
        "post" => with(http.post(&url), who).send_json(&body),
        "patch" => with(http.patch(&url), who).send_json(&body),
        "put" => with(http.put(&url), who).send_json(&body),
        other => panic!("the table has a method this test does not send: {other}"),
    };
    let mut res = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = res.status().as_u16();
    let stream = res
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let text = if stream {
        String::new()
    } else {
        res.body_mut().read_to_string().unwrap_or_default()
    };
    (status, text)
}

/// Whether `role` passes an operation marked `x-bifrost-role: access`.
fn allowed(access: &str, role: &str) -> bool {
    match access {
        "public" | "signed_in" => true,
        "viewer" => matches!(role, "admin" | "operator" | "viewer"),
        "operator" => matches!(role, "admin" | "operator"),
        "admin" => role == "admin",
        "metrics" => matches!(role, "admin" | "metrics"),
        other => panic!("unknown x-bifrost-role {other}"),
    }
}

#[test]
fn every_role_against_every_route() {
    let w = World::new();
    std::fs::write(w.share.join("a.txt"), b"a").unwrap();
    let dest = w.dir.path().join("dest");
    let job = w
        .bifrost
        .create_job(&w.connector, &[&w.src("a.txt")], &dest, None);
    w.bifrost.wait_job(&job, Duration::from_secs(30));
    let (status, stored) = w.bifrost.api(
        "POST",
        "/api/v1/destinations",
        Some(json!({"kind": "s3", "name": "Archive", "bucket": "archive",
            "endpoint": "http://127.0.0.1:9", "region": "us-east-1", "path_style": true,
            "access_key_id": "AK", "secret_access_key": "SK"})),
    );
    assert_eq!(status, 201, "{stored}");
    let stored = stored["id"].as_str().unwrap().to_owned();

    let (status, doc) = call(&w.bifrost, None, "get", "/api/v1/openapi.json", None);
    assert_eq!(status, 200, "{doc}");
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");

    let roles = ["viewer", "operator", "admin", "metrics"];
    let sessions: BTreeMap<&str, Session> =
        roles.iter().map(|r| (*r, account(&w.bifrost, r))).collect();
    let share = form_encode(w.share.to_str().unwrap());
    let mut checked = 0;
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let access = op["x-bifrost-role"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {template} has no x-bifrost-role"));
            let change = method != "get";
            // Signing out would end the session the rest of the walk uses; it is checked last.
            if method == "delete" && template == "/api/v1/session" {
                continue;
            }
            let id = if change {
                MADE_UP
            } else if template.starts_with("/api/v1/connectors/") {
                &w.connector
            } else if template.starts_with("/api/v1/jobs/") {
                &job
            } else {
                &stored
            };
            let mut path = template.replace("{id}", id);
            if template.starts_with("/api/v1/connectors/{id}/") {
                path.push_str(&format!("?path={share}"));
            }
            let outbound = op["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("outbound")));

            let (status, body) = call(&w.bifrost, None, method, &path, None);
            let want = if access == "public" { status } else { 401 };
            assert_eq!(status, want, "anonymous {method} {path}: {body}");
            for role in roles {
                let (status, body) = call(&w.bifrost, Some(&sessions[role]), method, &path, None);
                let what = format!("{role} {method} {path} ({access}): {status} {body}");
                if !allowed(access, role) {
                    assert_eq!(status, 403, "{what}");
                    assert!(body.contains(&format!("has the {role} role")), "{what}");
                } else if change {
                    assert!(matches!(status, 200..=299 | 400 | 404 | 409), "{what}");
                } else if outbound {
                    // Reaches the (absent) service: past the guard, the service's error.
                    assert!(matches!(status, 200 | 502), "{what}");
                } else {
                    assert!((200..300).contains(&status), "{what}");
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 4 * 30,
        "only {checked} calls: is the table whole?"
    );
    // A viewer's forced changes were refused: the job and the destination are as they were.
    assert_eq!(w.bifrost.job(&job)["state"], "completed");
    let (status, _) = w
        .bifrost
        .api("GET", &format!("/api/v1/destinations/{stored}"), None);
    assert_eq!(status, 200);
    for role in roles {
        let s = &sessions[role];
        assert_eq!(s.call("DELETE", "/api/v1/session", None).0, 204, "{role}");
        assert_eq!(s.call("GET", "/api/v1/jobs", None).0, 401, "{role}");
    }
}

#[test]
fn a_metrics_account_scrapes_metrics_and_nothing_else() {
    let w = World::new();
    let s = account(&w.bifrost, "metrics");
    let (status, text) = call(&w.bifrost, Some(&s), "get", "/metrics", None);
    assert_eq!(status, 200);
    assert!(text.contains("bifrost_connected_agents 1"), "{text}");
    let (status, body) = s.call("GET", "/api/v1/connectors", None);
    assert_eq!(status, 403, "{body}");
}
