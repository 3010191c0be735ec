//! Copies into object storage through stored destinations: a tree with every awkward kind of
//! file into moto (S3) and Azurite (Azure Blob), read back by the services' own SDKs; re-runs
//! that read nothing; a 300 MiB multipart upload that survives Bifrost killed three times; and
//! the services' errors (see `cloud/faults.rs`).

mod checksums;
mod faults;
mod proxy;

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::incremental::{reads, rerun};
use crate::objects::{sha256_hex, Azurite, Moto};
use crate::support::{noise, World};

/// A stored destination in one of the emulators.
pub enum Store {
    S3(Moto),
    Azure(Azurite),
}

pub const BUCKET: &str = "mover-bucket";

impl Store {
    pub fn s3() -> Self {
        let moto = Moto::start();
        moto.create_bucket(BUCKET);
        Store::S3(moto)
    }

    pub fn azure() -> Self {
        let azurite = Azurite::start();
        azurite.create_container(BUCKET);
        Store::Azure(azurite)
    }

    /// The `POST /api/v1/destinations` body for it, keys under `prefix`, at `endpoint` (the
    /// emulator's own, or a proxy in front of it).
    pub fn body(&self, prefix: &str, endpoint: Option<&str>) -> Value {
        match self {
            Store::S3(m) => json!({
                "name": "Archive", "kind": "s3", "bucket": BUCKET, "prefix": prefix,
                "endpoint": endpoint.unwrap_or(&m.endpoint), "region": Moto::REGION, "path_style": true,
                "access_key_id": Moto::ACCESS_KEY, "secret_access_key": Moto::SECRET_KEY,
            }),
            Store::Azure(a) => json!({
                "name": "Blobs", "kind": "azure_blob", "account": Azurite::ACCOUNT,
                "container": BUCKET, "prefix": prefix, "access_key": Azurite::KEY,
                "endpoint": endpoint.map(|e| format!("{e}/{}", Azurite::ACCOUNT)).unwrap_or_else(|| a.account_url()),
            }),
        }
    }

    /// Every object under `prefix`, read back in full by the service's own SDK.
    pub fn objects(&self, prefix: &str) -> serde_json::Map<String, Value> {
        let v = match self {
            Store::S3(m) => m.verify(BUCKET, prefix),
            Store::Azure(a) => a.verify(BUCKET, prefix),
        };
        v["objects"].as_object().cloned().unwrap_or_default()
    }
}

/// Creates the stored destination; its id.
pub fn destination(w: &World, store: &Store, prefix: &str, endpoint: Option<&str>) -> String {
    let (status, d) = w.bifrost.api(
        "POST",
        "/api/v1/destinations",
        Some(store.body(prefix, endpoint)),
    );
    assert_eq!(status, 201, "{d}");
    d["id"].as_str().unwrap().to_owned()
}

/// Starts a job copying `sources` into `path` inside destination `id`; its id.
pub fn job(w: &World, sources: &[String], id: &str, path: &str, extra: Value) -> String {
    let mut body = json!({
        "connector": w.connector,
        "sources": sources,
        "destination": {"kind": "stored", "id": id, "path": path},
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (status, job) = w.bifrost.api("POST", "/api/v1/jobs", Some(body));
    assert_eq!(status, 201, "{job}");
    job["id"].as_str().unwrap().to_owned()
}

/// The tree: nested folders, a 0-byte file, non-ASCII and non-UTF-8 names, many small files,
/// 20 MiB, a 200 MiB sparse file and an empty folder. Returns `(relative key, content)`.
fn make_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("a.txt".into(), b"hello\n".to_vec()),
        ("empty.bin".into(), Vec::new()),
        (
            "sub/deeper/ü Ünïcode €.txt".into(),
            "grüße\n".repeat(100).into_bytes(),
        ),
        ("twenty.bin".into(), noise(20 << 20, 3)),
    ];
    for i in 0..40 {
        files.push((
            format!("small/{i:03}.txt"),
            noise(100 + i * 97, i as u64 + 11),
        ));
    }
    for (rel, data) in &files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
    }
    // Not UTF-8 (Latin-1 é), as old Unix shares have: stored under the escape.
    let latin1 = root
        .join("sub")
        .join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt"));
    std::fs::write(&latin1, b"latin-1 name\n").unwrap();
    files.push(("sub/caf%E9.txt".into(), b"latin-1 name\n".to_vec()));
    // 200 MiB with data at three places and holes between.
    let sparse = root.join("sparse.bin");
    let f = std::fs::File::create(&sparse).unwrap();
    f.set_len(200 << 20).unwrap();
    let mut content = vec![0u8; 200 << 20];
    for at in [0usize, 100 << 20, (200 << 20) - 4096] {
        let chunk = noise(4096, at as u64 + 1);
        std::os::unix::fs::FileExt::write_all_at(&f, &chunk, at as u64).unwrap();
        content[at..at + 4096].copy_from_slice(&chunk);
    }
    files.push(("sparse.bin".into(), content));
    std::fs::create_dir_all(root.join("emptydir")).unwrap();
    files
}

/// The whole round: the tree lands, every object reads back as its source, the report names
/// each key, a re-run reads nothing, and a changed file alone is copied again.
fn tree_round_trip(store: Store) {
    let w = World::new();
    let tree = w.share.join("tree");
    let files = make_tree(&tree);
    let dest = destination(&w, &store, "pre", None);
    let id = job(&w, &[w.src("tree")], &dest, "dept", json!({}));
    let done = w.bifrost.wait_job(&id, Duration::from_secs(240));
    let failed = w.bifrost.files(&id);
    let failed: Vec<_> = failed.iter().filter(|f| f["status"] == "failed").collect();
    assert_eq!(done["state"], "completed", "{done:#} {failed:#?}");

    let objects = store.objects("pre/");
    assert_eq!(objects.len(), files.len(), "{:#?}", objects.keys());
    for (rel, data) in &files {
        let key = format!("pre/dept/tree/{rel}");
        let o = objects
            .get(&key)
            .unwrap_or_else(|| panic!("{key} missing: {:#?}", objects.keys()));
        assert_eq!(o["size"], data.len(), "{key}");
        assert_eq!(o["sha256"], sha256_hex(data), "{key}");
        let meta = &o["metadata"];
        assert!(
            meta["mover_mtime"]
                .as_str()
                .is_some_and(|m| m.contains('.')),
            "{key}: {meta}"
        );
        // Multipart uploads too: their BLAKE3 is set once they complete.
        assert_eq!(
            meta["mover_blake3"],
            blake3::hash(data).to_hex().as_str(),
            "{key}"
        );
        assert_eq!(
            meta.get("mover_escaped").is_some(),
            rel.contains("%E9"),
            "{key}: {meta}"
        );
    }

    let report = w.bifrost.files(&id);
    let line = |tail: &str| {
        report
            .iter()
            .find(|f| f["source"].as_str().unwrap().ends_with(tail))
            .unwrap_or_else(|| panic!("{tail} not in {report:#?}"))
            .clone()
    };
    assert_eq!(
        line("twenty.bin")["destination"],
        "pre/dept/tree/twenty.bin"
    );
    assert_eq!(
        line("sub/caf\u{fffd}.txt")["destination"],
        "pre/dept/tree/sub/caf%E9.txt"
    );
    let empty = line("emptydir");
    assert_eq!(empty["status"], "skipped", "{empty}");

    let (_, metrics) = w.bifrost.api("GET", "/metrics", None);
    let kind = match store {
        Store::S3(_) => "s3",
        Store::Azure(_) => "azure_blob",
    };
    let bytes_line = format!("bifrost_destination_bytes_total{{kind=\"{kind}\"}} ");
    let total: u64 = files.iter().map(|(_, d)| d.len() as u64).sum();
    let counted = metrics
        .as_str()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix(bytes_line.as_str())))
        .and_then(|n| n.trim().parse::<u64>().ok());
    assert_eq!(
        counted,
        Some(total),
        "bytes by destination kind in /metrics"
    );

    let before = reads(&w);
    let same = rerun(&w, &id, Duration::from_secs(60));
    assert_eq!(same["state"], "completed", "{same:#}");
    assert_eq!(
        reads(&w),
        before,
        "a re-run of an unchanged tree read files"
    );

    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(tree.join("a.txt"), b"changed\n").unwrap();
    let changed = rerun(&w, same["id"].as_str().unwrap(), Duration::from_secs(60));
    assert_eq!(changed["state"], "completed", "{changed:#}");
    assert_eq!(reads(&w), before + 1, "only the changed file is read");
    let objects = store.objects("pre/dept/tree/a.txt");
    assert_eq!(
        objects["pre/dept/tree/a.txt"]["sha256"],
        sha256_hex(b"changed\n")
    );
}

#[test]
fn a_tree_lands_in_s3_and_reads_back_whole() {
    tree_round_trip(Store::s3());
}

#[test]
fn a_tree_lands_in_azure_blob_and_reads_back_whole() {
    tree_round_trip(Store::azure());
}
