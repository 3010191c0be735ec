//! The service checks what arrives against a checksum Bifrost computed before sending: Azure
//! (Azurite) refuses a block or a blob damaged on the way by the test proxy and the file is sent
//! again; every S3 upload request carries the SHA-256 of its body (moto does not verify it: its
//! source has no BadDigest, so the test checks what the service is given).

use base64::Engine as _;
use std::time::Duration;

use serde_json::json;

use super::proxy::{Damage, FaultProxy};
use super::{destination, job, Store};
use crate::objects::sha256_hex;
use crate::support::{noise, World};

/// `big.bin` (20 MiB, three parts) and `small.txt`, in `parts/` of the share.
fn two_files(w: &World) -> (Vec<u8>, Vec<u8>) {
    let dir = w.share.join("parts");
    std::fs::create_dir_all(&dir).unwrap();
    let (big, small) = (noise(20 << 20, 21), noise(3000, 22));
    std::fs::write(dir.join("big.bin"), &big).unwrap();
    std::fs::write(dir.join("small.txt"), &small).unwrap();
    (big, small)
}

fn copy_through(w: &World, store: &Store, proxy: &FaultProxy) -> serde_json::Value {
    let dest = destination(w, store, "", Some(&proxy.endpoint));
    let id = job(w, &[w.src("parts")], &dest, "", json!({}));
    let done = w.bifrost.wait_job(&id, Duration::from_secs(240));
    let report = w.bifrost.files(&id);
    assert_eq!(done["state"], "completed", "{done:#} {report:#?}");
    done
}

#[test]
fn azure_refuses_a_block_or_blob_damaged_on_the_way_and_it_is_sent_again() {
    let w = World::new();
    let store = Store::azure();
    let Store::Azure(azurite) = &store else {
        unreachable!()
    };
    let proxy = FaultProxy::start(&azurite.endpoint);
    let (big, small) = two_files(&w);
    proxy.damage(Damage {
        method: "PUT",
        needles: vec!["big.bin".into(), "comp=block".into()],
        not: vec!["blocklist".into()],
        times: 1,
    });
    proxy.damage(Damage {
        method: "PUT",
        needles: vec!["small.txt".into()],
        not: vec!["comp=".into()],
        times: 1,
    });
    copy_through(&w, &store, &proxy);

    let objects = store.objects("parts/");
    assert_eq!(objects["parts/big.bin"]["sha256"], sha256_hex(&big));
    assert_eq!(objects["parts/small.txt"]["sha256"], sha256_hex(&small));
    // Each damaged request was refused by the service, then sent again whole.
    let (_, metrics) = w.bifrost.api("GET", "/metrics", None);
    let refused = metrics
        .as_str()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix(
                    "bifrost_destination_requests_total{kind=\"azure_blob\",status=\"400\"} ",
                )
            })
        })
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert_eq!(refused, Some(2), "400s from Azurite in /metrics");
    let requests = proxy.requests.lock().unwrap().clone();
    for (name, needle) in [("small.txt", "small.txt"), ("big.bin", "comp=block")] {
        let sent: Vec<_> = requests
            .iter()
            .filter(|r| r.method == "PUT" && r.target.contains(name) && r.target.contains(needle))
            .filter(|r| !r.target.contains("comp=blocklist") && !r.target.contains("comp=metadata"))
            .collect();
        assert!(sent.len() >= 2, "{name}: {sent:#?}");
        for r in sent {
            let md5 = r.header("content-md5").unwrap_or_default();
            assert_eq!(md5.len(), 24, "{name} went without its Content-MD5: {r:?}");
        }
    }
}

#[test]
fn every_s3_upload_request_carries_the_sha256_of_its_body() {
    let w = World::new();
    let store = Store::s3();
    let Store::S3(moto) = &store else {
        unreachable!()
    };
    let proxy = FaultProxy::start(&moto.endpoint);
    let (big, small) = two_files(&w);
    copy_through(&w, &store, &proxy);
    let objects = store.objects("parts/");
    assert_eq!(objects["parts/big.bin"]["sha256"], sha256_hex(&big));
    assert_eq!(objects["parts/small.txt"]["sha256"], sha256_hex(&small));

    let requests = proxy.requests.lock().unwrap().clone();
    let uploads: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.header("x-amz-copy-source").is_none())
        .collect();
    // big.bin's three parts and small.txt's put.
    let parts = uploads
        .iter()
        .filter(|r| r.target.contains("partNumber="))
        .count();
    assert_eq!(parts, 3, "{uploads:#?}");
    assert!(uploads.iter().any(|r| r.target.contains("small.txt")));
    for r in &uploads {
        let want = base64::engine::general_purpose::STANDARD.encode(r.sha256);
        assert_eq!(
            r.header("x-amz-checksum-sha256"),
            Some(want.as_str()),
            "{} {} ({} bytes)",
            r.method,
            r.target,
            r.len
        );
    }
    // The multipart object got its BLAKE3 by a copy onto itself.
    assert!(
        requests
            .iter()
            .any(|r| r.header("x-amz-metadata-directive") == Some("REPLACE")
                && r.target.contains("big.bin")),
        "{requests:#?}"
    );
}
