//! The API the console uses: sign-in and CSRF, events, folder size, preview, filters, mappings, CSV.

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use serde_json::json;

use crate::support::{form_encode, World};

/// One HTTPS request with exactly these headers; returns status, headers and body.
fn raw(
    w: &World,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    let url = format!("{}{}", w.bifrost.url, path);
    // The shared client keeps no cookies, so each call sends exactly the headers given.
    let agent = w.bifrost.client();
    let mut res = if method == "POST" {
        let mut r = agent.post(&url);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        match body {
            Some(b) => r
                .header("Content-Type", "application/json")
                .send(b)
                .unwrap(),
            None => r.send_empty().unwrap(),
        }
    } else {
        let mut r = if method == "GET" {
            agent.get(&url)
        } else {
            agent.delete(&url)
        };
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.call().unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    };
    let status = res.status().as_u16();
    let hdrs = res
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    (
        status,
        hdrs,
        res.body_mut().read_to_string().unwrap_or_default(),
    )
}

#[test]
fn sign_in_sets_a_strict_cookie_and_state_changes_need_csrf() {
    let w = World::new();
    let (status, _, body) = raw(
        &w,
        "POST",
        "/api/v1/session",
        &[],
        Some(r#"{"token":"wrong"}"#),
    );
    assert_eq!(status, 401, "{body}");
    let (status, headers, body) = raw(
        &w,
        "POST",
        "/api/v1/session",
        &[],
        Some(&json!({"token": w.bifrost.token}).to_string()),
    );
    assert_eq!(status, 200, "{body}");
    let csrf = serde_json::from_str::<serde_json::Value>(&body).unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_owned();
    let set_cookie = headers
        .iter()
        .find(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.clone())
        .unwrap();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let (status, _, _) = raw(
        &w,
        "GET",
        "/api/v1/connectors",
        &[("Cookie", &cookie)],
        None,
    );
    assert_eq!(status, 200);
    let (status, _, body) = raw(&w, "GET", "/api/v1/session", &[("Cookie", &cookie)], None);
    assert_eq!((status, body.contains(&csrf)), (200, true));
    let (status, _, body) = raw(
        &w,
        "POST",
        "/api/v1/jobs",
        &[("Cookie", &cookie)],
        Some("{}"),
    );
    assert_eq!(status, 403, "a state change without the CSRF token: {body}");
    assert!(body.contains("CSRF"));
    let (status, _, body) = raw(
        &w,
        "POST",
        "/api/v1/jobs",
        &[("Cookie", &cookie), ("X-CSRF-Token", "nope")],
        Some("{}"),
    );
    assert_eq!(status, 403, "{body}");
    let (status, _, body) = raw(
        &w,
        "POST",
        "/api/v1/jobs",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        Some("{}"),
    );
    assert_eq!(
        status, 400,
        "with the token the request reaches validation: {body}"
    );
    let (status, _, _) = raw(
        &w,
        "DELETE",
        "/api/v1/session",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        None,
    );
    assert_eq!(status, 204);
    let (status, _, _) = raw(
        &w,
        "GET",
        "/api/v1/connectors",
        &[("Cookie", &cookie)],
        None,
    );
    assert_eq!(status, 401, "signed out");
    let (status, _, body) = raw(&w, "GET", "/api/v1/session", &[("Cookie", &cookie)], None);
    assert_eq!(
        (status, body.contains("\"signed_in\":false")),
        (200, true),
        "{body}"
    );
    // The console page itself is served with a strict CSP.
    let (status, headers, body) = raw(&w, "GET", "/", &[], None);
    assert_eq!(status, 200);
    assert!(body.contains("src=\"/assets/app.js\""), "{body}");
    let csp = headers
        .iter()
        .find(|(k, _)| k == "content-security-policy")
        .unwrap()
        .1
        .clone();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
}

#[test]
fn events_stream_the_lists() {
    let w = World::new();
    let addr = w.bifrost.addr.clone();
    // Read the first SSE event over a raw TLS stream with ureq's reader.
    let agent = w.bifrost.client();
    let res = agent
        .get(&format!("https://{addr}/api/v1/events"))
        .header("Authorization", &format!("Bearer {}", w.bifrost.token))
        .call()
        .unwrap();
    assert_eq!(
        res.headers().get("content-type").unwrap(),
        "text/event-stream"
    );
    let mut lines = BufReader::new(res.into_body().into_reader()).lines();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let line = lines.next().unwrap().unwrap();
        if let Some(name) = line.strip_prefix("event: ") {
            let data = lines.next().unwrap().unwrap();
            assert!(data.starts_with("data: ["), "{data}");
            seen.push(name.to_owned());
        }
    }
    seen.sort();
    assert_eq!(seen, ["connectors", "jobs"]);
    let _ = std::io::stdout().flush();
}

#[test]
fn size_preview_filters_mappings_and_csv() {
    let w = World::new();
    let home = w.share.join("home");
    for user in ["alice", "bob", "carol"] {
        std::fs::create_dir_all(home.join(user).join("docs")).unwrap();
        std::fs::write(home.join(user).join("docs/cv.txt"), format!("{user}'s cv")).unwrap();
        std::fs::write(home.join(user).join("notes.tmp"), "scratch").unwrap();
        std::fs::write(home.join(user).join(".bashrc"), "alias").unwrap();
    }
    let q = form_encode(home.to_str().unwrap());
    let (status, size) = w.bifrost.api(
        "GET",
        &format!("/api/v1/connectors/{}/size?path={q}", w.connector),
        None,
    );
    assert_eq!(status, 200, "{size}");
    assert_eq!(
        (size["files"].as_u64(), size["folders"].as_u64()),
        (Some(9), Some(6)),
        "{size}"
    );

    let dest = w.dir.path().join("targets");
    let mappings: Vec<_> = ["alice", "bob", "carol"]
        .iter()
        .map(|u| json!({"source": home.join(u), "destination": dest.join(format!("{u}-drive"))}))
        .collect();
    let body = json!({
        "connector": w.connector,
        "destination": {"kind": "folder", "path": dest},
        "mappings": mappings,
        "filters": {"exclude": ["*.tmp"], "skip_hidden": true}
    });
    let (status, preview) = w
        .bifrost
        .api("POST", "/api/v1/jobs/preview", Some(body.clone()));
    assert_eq!(status, 200, "{preview}");
    let cv_bytes: usize = ["alice", "bob", "carol"]
        .iter()
        .map(|u| format!("{u}'s cv").len())
        .sum();
    assert_eq!(
        (preview["files"].as_u64(), preview["bytes"].as_u64()),
        (Some(3), Some(cv_bytes as u64)),
        "{preview}"
    );
    let (status, job) = w.bifrost.api("POST", "/api/v1/jobs", Some(body));
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap();
    let done = w.bifrost.wait_job(id, Duration::from_secs(30));
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["files_done"], 3);
    for user in ["alice", "bob", "carol"] {
        let drive = dest.join(format!("{user}-drive"));
        assert_eq!(
            std::fs::read_to_string(drive.join("docs/cv.txt")).unwrap(),
            format!("{user}'s cv")
        );
        assert!(!drive.join("notes.tmp").exists() && !drive.join(".bashrc").exists());
    }
    let (status, bad) = w.bifrost.api(
        "POST",
        "/api/v1/jobs/preview",
        Some(json!({"connector": w.connector, "sources": [home], "destination": {"kind": "folder", "path": dest}, "filters": {"include": ["[oops"]}})),
    );
    assert_eq!(status, 400, "{bad}");

    let url = format!("{}/api/v1/jobs/{id}/files.csv", w.bifrost.url);
    let agent = w.bifrost.client();
    let mut res = agent
        .get(&url)
        .header("Authorization", &format!("Bearer {}", w.bifrost.token))
        .call()
        .unwrap();
    assert!(res
        .headers()
        .get("content-disposition")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("attachment"));
    let csv = res.body_mut().read_to_string().unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "source,destination,size,status,reason,blake3,kind"
    );
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[1..].iter().all(|l| l.contains(",copied,")), "{csv}");
}
