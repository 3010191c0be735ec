//! Destination requests checked before anything is stored: a GCS destination whose settings
//! are checked and whose unreachable endpoint is named, malformed requests refused with 400
//! and unknown ids with 404, and jobs naming a stored destination with a path that stays inside.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::{assert_nowhere, metric, random_hex, Client};
use crate::objects::Moto;
use crate::support::{Bifrost, TestCa, World};

#[test]
fn gcs_destination_is_checked_and_an_unreachable_endpoint_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let mut c = Client::new(&bifrost);
    let canary = format!("CANARY-{}", random_hex());
    let e = c.ok(
        "POST",
        "/api/v1/destinations",
        Some(json!({"name":"G","kind":"gcs","bucket":"gbkt","service_account_json":format!("{{{canary}")})),
        400,
    );
    assert!(e["error"].as_str().unwrap().contains("not JSON"), "{e}");
    // A port nothing listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let account = json!({"client_email":"mover@example.invalid","private_key_id":"1","private_key":canary,"disable_oauth":true}).to_string();
    let d = c.ok(
        "POST",
        "/api/v1/destinations",
        Some(json!({"name":"G","kind":"gcs","bucket":"gbkt","service_account_json":account,"endpoint":format!("http://127.0.0.1:{port}")})),
        201,
    );
    assert!(d.get("service_account_json").is_none(), "{d}");
    let t = c.test(d["id"].as_str().unwrap());
    assert_eq!(t["ok"], false);
    let error = t["error"].as_str().unwrap();
    assert!(
        error.starts_with("list failed: cannot connect to the service"),
        "{t}"
    );
    eprintln!("gcs, unreachable: {error}");
    assert!(
        metric(
            &bifrost,
            "bifrost_destination_requests_total{kind=\"gcs\",status=\"error\"}"
        ) >= 1.0
    );
    assert_nowhere(&canary, &c);
}

#[test]
fn malformed_destination_requests_are_refused_with_400_and_unknown_ids_with_404() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let mut c = Client::new(&bifrost);
    let s3 = |extra: Value| {
        let mut b = json!({"name":"A","kind":"s3","bucket":"bkt","access_key_id":"AK","secret_access_key":"SECRET-x"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for (body, says) in [
        (s3(json!({"colour": "red"})), "unknown field"),
        (s3(json!({"bucket": "b"})), "not an S3 bucket name"),
        (s3(json!({"bucket": "Upper"})), "not an S3 bucket name"),
        (s3(json!({"name": ""})), "1 to 100"),
        (s3(json!({"prefix": "a/../b"})), ".."),
        (s3(json!({"endpoint": "ftp://h"})), "http"),
        (
            s3(json!({"endpoint": "http://ak:pw@h"})),
            "user name or password",
        ),
        (
            s3(json!({"secret_access_key": ""})),
            "secret_access_key is empty",
        ),
        (s3(json!({"kind": "ftp"})), "unknown variant"),
        (
            json!({"name":"A","kind":"azure_blob","account":"devstoreaccount1","container":"c1","access_key":"a2V5"}),
            "not an Azure container name",
        ),
        (
            json!({"name":"A","kind":"azure_blob","account":"Dev-Account","container":"ccc","access_key":"a2V5"}),
            "not an Azure storage account name",
        ),
    ] {
        let e = c.ok("POST", "/api/v1/destinations", Some(body.clone()), 400);
        let text = e["error"].as_str().unwrap();
        assert!(text.contains(says), "{body}: {text}");
        assert!(!text.contains("SECRET-x"), "{text}");
    }
    let d = c.ok("POST", "/api/v1/destinations", Some(s3(json!({}))), 201);
    let id = d["id"].as_str().unwrap();
    assert_eq!(d["path_style"], false, "AWS (no endpoint): virtual-hosted");
    let e = c.ok(
        "PATCH",
        &format!("/api/v1/destinations/{id}"),
        Some(json!({"container": "abc"})),
        400,
    );
    assert_eq!(e["error"], "container does not apply to s3 destinations");
    c.ok(
        "PATCH",
        &format!("/api/v1/destinations/{id}"),
        Some(json!({"kind": "gcs"})),
        400,
    );
    c.ok(
        "PATCH",
        "/api/v1/destinations/nope",
        Some(json!({"name": "x"})),
        404,
    );
    c.ok("GET", "/api/v1/destinations/nope", None, 404);
    c.ok("GET", "/api/v1/destinations/nope/browse", None, 404);
}

#[test]
fn jobs_name_a_stored_destination_and_a_path_that_stays_inside() {
    let w = World::new();
    let moto = Moto::start();
    moto.create_bucket("jobs-bkt");
    std::fs::create_dir_all(w.share.join("Finance")).unwrap();
    std::fs::write(w.share.join("Finance/a.txt"), b"hello").unwrap();
    let b = &w.bifrost;
    let (status, d) = b.api(
        "POST",
        "/api/v1/destinations",
        Some(json!({"name":"J","kind":"s3","bucket":"jobs-bkt","endpoint":moto.endpoint,"access_key_id":Moto::ACCESS_KEY,"secret_access_key":Moto::SECRET_KEY})),
    );
    assert_eq!(status, 201, "{d}");
    let id = d["id"].as_str().unwrap();
    let job = |dest: Value| {
        b.api(
            "POST",
            "/api/v1/jobs",
            Some(json!({"connector": w.connector, "sources": [w.src("Finance")], "destination": dest})),
        )
    };
    let (status, e) = job(json!({"kind":"stored","id":"nope","path":"dept"}));
    assert_eq!(status, 400, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("no destination nope"),
        "{e}"
    );
    for climbing in ["../up", "dept/../../up", "a//b"] {
        let (status, e) = job(json!({"kind":"stored","id":id,"path":climbing}));
        assert_eq!(status, 400, "{climbing}: {e}");
    }
    let (status, created) = job(json!({"kind":"stored","id":id,"path":"/dept/"}));
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["destination"],
        json!({"kind":"stored","id":id,"path":"dept"})
    );
    // Whatever the engine makes of it today, the job ends and Bifrost stays up.
    let done = b.wait_job(created["id"].as_str().unwrap(), Duration::from_secs(60));
    assert!(done["state"].is_string());
    eprintln!(
        "job into a stored destination, today: {} {:?}",
        done["state"],
        b.files(created["id"].as_str().unwrap())
            .first()
            .map(|f| f["reason"].clone())
    );
    let (status, _) = b.api("GET", "/api/v1/destinations", None);
    assert_eq!(status, 200, "Bifrost still answers");
    // Nothing landed on Bifrost's own disk at "/dept".
    assert!(!Path::new("/dept/Finance/a.txt").exists());
    // The folder form keeps working unchanged.
    let dest = w.dir.path().join("out");
    let (status, e) = job(json!({"kind":"folder","path":dest}));
    assert_eq!(status, 201, "{e}");
}
