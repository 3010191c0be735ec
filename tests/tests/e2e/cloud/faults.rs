//! The services' errors and Bifrost's own death, mid-upload: a test proxy (`proxy.rs`) in front
//! of moto that answers chosen requests with the service's error (a part that keeps failing, a part that
//! fails twice, credentials revoked mid-job), and a 300 MiB multipart upload with Bifrost
//! killed three times.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;

use super::proxy::{FaultProxy, Rule};
use super::{destination, job, Store};
use crate::objects::sha256_hex;
use crate::support::{noise, wait_for, Agent, Bifrost, Forwarder, TestCa, World};

/// A part that fails twice completes after object_store's own retries; a part that keeps
/// failing fails its file, after the engine's attempts, with the service's own words; and
/// nothing is marked copied that is not there.
#[test]
fn parts_that_fail_are_retried_then_the_file_fails_with_the_services_words() {
    let w = World::new();
    let store = Store::s3();
    let Store::S3(moto) = &store else {
        unreachable!()
    };
    let proxy = FaultProxy::start(&moto.endpoint);
    let dir = w.share.join("parts");
    std::fs::create_dir_all(&dir).unwrap();
    let (flaky, broken, small) = (noise(20 << 20, 5), noise(20 << 20, 6), b"fine\n".to_vec());
    std::fs::write(dir.join("flaky.bin"), &flaky).unwrap();
    std::fs::write(dir.join("broken.bin"), &broken).unwrap();
    std::fs::write(dir.join("small.txt"), &small).unwrap();
    proxy.fail(Rule {
        method: "PUT",
        needles: vec!["flaky.bin".into(), "partNumber=1".into()],
        times: 2,
        status: 500,
        code: "InternalError",
        message: "We encountered an internal error. Please try again.",
    });
    proxy.fail(Rule {
        method: "PUT",
        needles: vec!["broken.bin".into(), "partNumber=2".into()],
        times: usize::MAX,
        status: 503,
        code: "SlowDown",
        message: "Please reduce your request rate.",
    });
    let dest = destination(&w, &store, "", Some(&proxy.endpoint));
    let id = job(&w, &[w.src("parts")], &dest, "", json!({}));
    let done = w.bifrost.wait_job(&id, Duration::from_secs(300));
    assert_eq!(done["state"], "completed_with_errors", "{done:#}");
    let report = w.bifrost.files(&id);
    let status = |name: &str| {
        report
            .iter()
            .find(|f| f["source"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("{name}: {report:#?}"))
            .clone()
    };
    assert_eq!(status("flaky.bin")["status"], "copied", "{report:#?}");
    assert_eq!(status("small.txt")["status"], "copied", "{report:#?}");
    let failed = status("broken.bin");
    assert_eq!(failed["status"], "failed", "{failed}");
    let reason = failed["reason"].as_str().unwrap();
    assert!(
        reason.contains("503 SlowDown: Please reduce your request rate."),
        "{reason}"
    );
    // Tried again by the engine, not only by object_store.
    let tries = proxy
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.starts_with("PUT") && r.contains("broken.bin") && r.contains("partNumber=2"))
        .count();
    assert!(tries >= 10, "the failing part was sent {tries} times");

    let objects = store.objects("parts/");
    assert_eq!(objects["parts/flaky.bin"]["sha256"], sha256_hex(&flaky));
    assert_eq!(objects["parts/small.txt"]["sha256"], sha256_hex(&small));
    assert!(
        !objects.contains_key("parts/broken.bin"),
        "{:#?}",
        objects.keys()
    );
    let (_, metrics) = w.bifrost.api("GET", "/metrics", None);
    let text = metrics.as_str().expect("metrics are text");
    let by_status = text
        .lines()
        .find(|l| {
            l.starts_with("bifrost_destination_requests_total") && l.contains("status=\"503\"")
        })
        .unwrap_or_else(|| panic!("no request errors by status in /metrics: {text}"));
    assert!(by_status.contains("kind=\"s3\""), "{by_status}");
}

/// Credentials revoked mid-job: what is left fails with the service's refusal, and every file
/// the report calls copied is in the bucket.
#[test]
fn credentials_revoked_mid_job_fail_what_is_left() {
    let w = World::new();
    let store = Store::s3();
    let Store::S3(moto) = &store else {
        unreachable!()
    };
    let proxy = FaultProxy::start(&moto.endpoint);
    let dir = w.share.join("many");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..60 {
        std::fs::write(dir.join(format!("{i:02}.bin")), noise(512 << 10, i)).unwrap();
    }
    let dest = destination(&w, &store, "", Some(&proxy.endpoint));
    let id = job(
        &w,
        &[w.src("many")],
        &dest,
        "",
        json!({"bandwidth_limit": 4 << 20, "concurrency": 1}),
    );
    wait_for(Duration::from_secs(60), "some objects to land", || {
        let puts = proxy
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.starts_with("PUT"))
            .count();
        (puts >= 5).then_some(())
    });
    proxy.revoked.store(true, Ordering::SeqCst);
    let done = w.bifrost.wait_job(&id, Duration::from_secs(300));
    assert_ne!(done["state"], "completed", "{done:#}");
    proxy.revoked.store(false, Ordering::SeqCst);
    let objects = store.objects("many/");
    let report = w.bifrost.files(&id);
    let mut copied = 0;
    for f in &report {
        let name = f["source"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned();
        let there = objects.contains_key(&format!("many/{name}"));
        match f["status"].as_str().unwrap() {
            "copied" => {
                copied += 1;
                assert!(there, "{name} is reported copied but is not in the bucket");
            }
            "failed" => {
                let reason = f["reason"].as_str().unwrap();
                // A HEAD answer has no body: the status is all the service says to it.
                assert!(reason.contains("403"), "{reason}");
            }
            other => panic!("{name}: {other}: {f}"),
        }
    }
    assert!((1..60).contains(&copied), "{copied} copied");
}

/// A 300 MiB file in multipart upload survives Bifrost killed three times: the object is whole,
/// and the agent sends less than 1.3× the file.
#[test]
fn bifrost_killed_three_times_mid_upload() {
    const SIZE: usize = 300 << 20;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let mut bifrost = Bifrost::start(dir.path(), &ca);
    let link = Forwarder::new(&bifrost.addr);
    let share = dir.path().join("share");
    std::fs::create_dir_all(share.join("big")).unwrap();
    let data = noise(SIZE, 9);
    std::fs::write(share.join("big/huge.bin"), &data).unwrap();
    let relay = format!("https://127.0.0.1:{}", link.port);
    let agent = Agent::start(
        &dir.path().join("home"),
        &[
            "--relay",
            &relay,
            "--relay-ca",
            ca.ca_file.to_str().unwrap(),
            "--share",
            share.to_str().unwrap(),
        ],
    );
    let connector = bifrost.authorize(&agent.key(), "fs1")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    agent.wait_status("authorized as fs1", Duration::from_secs(10));
    let store = Store::s3();
    let (status, d) = bifrost.api("POST", "/api/v1/destinations", Some(store.body("", None)));
    assert_eq!(status, 201, "{d}");
    let (status, job) = bifrost.api(
        "POST",
        "/api/v1/jobs",
        Some(json!({
            "connector": connector,
            "sources": [share.join("big")],
            "destination": {"kind": "stored", "id": d["id"], "path": ""},
            "concurrency": 1,
            "bandwidth_limit": 48 << 20,
        })),
    );
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    for quarter in 1..=3u64 {
        let mark = SIZE as u64 * quarter / 4;
        wait_for(
            Duration::from_secs(120),
            "the upload to reach the mark",
            || (link.bytes_up() >= mark).then_some(()),
        );
        bifrost.restart(&ca);
        agent.wait_status("authorized as fs1", Duration::from_secs(30));
    }
    let done = bifrost.wait_job(&id, Duration::from_secs(300));
    assert_eq!(done["state"], "completed", "{done:#}");
    let objects = store.objects("big/");
    assert_eq!(objects["big/huge.bin"]["sha256"], sha256_hex(&data));
    let sent = link.bytes_up();
    let ratio = sent as f64 / SIZE as f64;
    eprintln!("the agent sent {sent} bytes for a {SIZE}-byte file ({ratio:.3}×)");
    assert!(ratio < 1.3, "the agent sent {ratio:.3}× the file");
    assert_eq!(
        bifrost.files(&id)[0]["blake3"],
        blake3::hash(&data).to_hex().as_str()
    );
}
