//! Object-store emulators for the end-to-end tests: moto (S3) and Azurite (Azure Blob), one
//! process per test on a port the kernel chose, and `tests/verify_objects.py`, which reads the
//! objects back with the services' own Python SDKs. scripts/setup installs all three into
//! `$MOVER_TOOLS` (default `~/.cache/mover-tools`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::prelude::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{kill_group, wait_for, Lines, Started};

/// How long an emulator may take to listen (moto needs ~1.5 s on an idle machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Where scripts/setup put the emulators: `$MOVER_TOOLS`, else `~/.cache/mover-tools`.
pub fn tools() -> PathBuf {
    match std::env::var_os("MOVER_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/mover-tools"),
    }
}

/// A tool under `tools()`, or a panic that says how to get it.
fn tool(rel: &str) -> PathBuf {
    let path = tools().join(rel);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup (it installs the object-store emulators)",
        path.display()
    );
    path
}

/// Lowercase hex SHA-256, as the verifier prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Spawns `cmd` in its own process group and waits for the stdout or stderr line that holds
/// `marker` followed by the address it listens on (`http://127.0.0.1:PORT`). A process that
/// exits first fails the test at once with what it printed.
fn spawn_listening(mut cmd: Command, name: &str, marker: &str) -> (Child, String, Lines) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut started = Started(Some(
        cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}")),
    ));
    let output = Lines::default();
    let child = started.0.as_mut().expect("spawned");
    output.follow(child.stdout.take().expect("piped"));
    output.follow(child.stderr.take().expect("piped"));
    let line = wait_for(START_TIMEOUT, &format!("{name} to listen"), || {
        if let Ok(Some(status)) = child.try_wait() {
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "{name} exited with {status} before listening: {:#?}",
                output.all()
            );
        }
        output.all().into_iter().find(|l| l.contains(marker))
    });
    let endpoint = line
        .split_once("http://")
        .map(|(_, rest)| format!("http://{}", rest.trim()))
        .unwrap_or_else(|| panic!("{name}: no address in {line:?}"));
    let http = agent();
    // Bound is not yet serving: wait until it answers a request (any status).
    wait_for(START_TIMEOUT, &format!("{name} to answer"), || {
        http.get(&format!("{endpoint}/")).call().ok()
    });
    (started.0.take().expect("spawned"), endpoint, output)
}

/// A plain HTTP client that returns answers of any status.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// Sends `req`; returns the status and the body as text.
fn send(req: ureq::http::Request<Vec<u8>>) -> (u16, String) {
    let what = format!("{} {}", req.method(), req.uri());
    let mut res = agent().run(req).unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = res.body_mut().read_to_string().unwrap_or_default();
    (res.status().as_u16(), text)
}

/// Runs `tests/verify_objects.py` with the venv's Python; returns its JSON document.
fn verify(args: &[&str]) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("verify_objects.py");
    let out = Command::new(tool("venv/bin/python"))
        .arg(&script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run verify_objects.py");
    assert!(
        out.status.success(),
        "verify_objects.py {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("verify_objects.py prints JSON")
}

/// A moto S3 server of its own (in memory; any access key is accepted, none is checked).
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`: the S3 endpoint (path-style addressing).
    pub endpoint: String,
    /// Its stdout and stderr (one access-log line per request).
    pub output: Lines,
}

impl Moto {
    /// Access key id to configure clients with (moto does not check it).
    pub const ACCESS_KEY: &'static str = "testing";
    /// Secret access key to configure clients with.
    pub const SECRET_KEY: &'static str = "testing";
    /// The region clients sign for.
    pub const REGION: &'static str = "us-east-1";

    /// Starts `moto_server` on a port the kernel picks and waits until it answers.
    pub fn start() -> Self {
        let mut cmd = Command::new(tool("venv/bin/moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", "0"]);
        let (child, endpoint, output) = spawn_listening(cmd, "moto_server", "Running on http://");
        Self {
            child,
            endpoint,
            output,
        }
    }

    /// Creates `bucket` (an unsigned path-style PUT, which moto accepts).
    pub fn create_bucket(&self, bucket: &str) {
        let req = ureq::http::Request::put(format!("{}/{bucket}", self.endpoint))
            .body(Vec::new())
            .expect("request");
        let (status, body) = send(req);
        assert_eq!(
            status,
            200,
            "create bucket {bucket}: {body}\n{:#?}",
            self.output.all()
        );
    }

    /// Stores `body` at `key` with `x-amz-meta-*` `metadata` (an unsigned PUT): for planting
    /// objects a test then expects to find, overwrite or skip.
    pub fn put_object(&self, bucket: &str, key: &str, body: &[u8], metadata: &[(&str, &str)]) {
        let mut req = ureq::http::Request::put(format!("{}/{bucket}/{key}", self.endpoint))
            .header("Content-Type", "application/octet-stream");
        for (k, v) in metadata {
            req = req.header(format!("x-amz-meta-{k}"), *v);
        }
        let (status, text) = send(req.body(body.to_vec()).expect("request"));
        assert_eq!(status, 200, "put {bucket}/{key}: {text}");
    }

    /// Every object under `prefix` read back by boto3: `{"objects": {KEY: {"size", "sha256",
    /// "metadata"}}, "count": N, ...}`. S3 lowercases metadata keys.
    pub fn verify(&self, bucket: &str, prefix: &str) -> Value {
        verify(&[
            "--kind",
            "s3",
            "--endpoint",
            &self.endpoint,
            "--bucket",
            bucket,
            "--prefix",
            prefix,
            "--access-key",
            Self::ACCESS_KEY,
            "--secret-key",
            Self::SECRET_KEY,
            "--region",
            Self::REGION,
        ])
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// An Azurite Blob service of its own, keeping its data in a temp folder.
pub struct Azurite {
    child: Child,
    _data: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`; blobs live under `/devstoreaccount1/CONTAINER/NAME`.
    pub endpoint: String,
    /// Its stdout and stderr.
    pub output: Lines,
}

impl Azurite {
    /// Azurite's built-in development account.
    pub const ACCOUNT: &'static str = "devstoreaccount1";
    /// That account's key, as Microsoft publishes it (not a secret).
    pub const KEY: &'static str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    /// Starts `azurite-blob` on a port the kernel picks and waits until it answers.
    pub fn start() -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let mut cmd = Command::new(tool("node/node_modules/.bin/azurite-blob"));
        cmd.args(["--blobHost", "127.0.0.1", "--blobPort", "0", "--location"])
            .arg(data.path())
            // Tests never reach the internet; Azurite's telemetry would try.
            .args(["--disableTelemetry", "--skipApiVersionCheck", "--loose"]);
        let (child, endpoint, output) = spawn_listening(cmd, "azurite-blob", "listens on http://");
        Self {
            child,
            _data: data,
            endpoint,
            output,
        }
    }

    /// The account URL that clients take as their endpoint (`http://127.0.0.1:PORT/ACCOUNT`).
    pub fn account_url(&self) -> String {
        format!("{}/{}", self.endpoint, Self::ACCOUNT)
    }

    /// Creates `container` (names: 3-63 lowercase letters, digits and dashes).
    pub fn create_container(&self, container: &str) {
        let (status, body) = self.request("PUT", container, &[("restype", "container")], &[], &[]);
        assert_eq!(
            status,
            201,
            "create container {container}: {body}\n{:#?}",
            self.output.all()
        );
    }

    /// Stores `body` as block blob `container/name` with `x-ms-meta-*` `metadata`.
    pub fn put_blob(&self, container: &str, name: &str, body: &[u8], metadata: &[(&str, &str)]) {
        let mut headers = vec![("x-ms-blob-type".to_owned(), "BlockBlob".to_owned())];
        headers.extend(
            metadata
                .iter()
                .map(|(k, v)| (format!("x-ms-meta-{k}"), v.to_string())),
        );
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let path = format!("{container}/{name}");
        let (status, text) = self.request("PUT", &path, &[], &headers, body);
        assert_eq!(status, 201, "put blob {path}: {text}");
    }

    /// A request signed with the account key (Shared Key): `path` is `CONTAINER[/NAME]`,
    /// `query` unencoded pairs, `headers` extra headers. Returns the status and body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        let path = format!("/{}/{path}", Self::ACCOUNT);
        let date = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
            ))
            .expect("format date");
        let mut headers: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        headers.push(("x-ms-date".into(), date));
        headers.push(("x-ms-version".into(), "2021-08-06".into()));
        let auth = shared_key(method, &path, query, &headers, body.len());
        let mut url = format!("{}{path}", self.endpoint);
        for (i, (k, v)) in query.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            url.push_str(&format!("{sep}{}={}", form_encode(k), form_encode(v)));
        }
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Authorization", auth);
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        send(req.body(body.to_vec()).expect("request"))
    }

    /// Every blob under `prefix` read back by azure-storage-blob (see `Moto::verify`).
    pub fn verify(&self, container: &str, prefix: &str) -> Value {
        verify(&[
            "--kind",
            "azure_blob",
            "--endpoint",
            &self.account_url(),
            "--container",
            container,
            "--prefix",
            prefix,
            "--account",
            Self::ACCOUNT,
            "--key",
            Self::KEY,
        ])
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The `Authorization` value of a Shared Key request (path-style, as Azurite addresses
/// accounts): HMAC-SHA256 over the verb, the standard headers, the `x-ms-*` headers and the
/// resource, per "Authorize with Shared Key" (version 2015-02-21 and later).
fn shared_key(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    headers: &[(String, String)],
    len: usize,
) -> String {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let length = if len == 0 {
        String::new()
    } else {
        len.to_string()
    };
    let mut text = format!("{method}\n");
    for name in ["content-encoding", "content-language"] {
        text.push_str(&format!("{}\n", header(name)));
    }
    text.push_str(&format!("{length}\n"));
    for name in [
        "content-md5",
        "content-type",
        "date",
        "if-modified-since",
        "if-match",
        "if-none-match",
        "if-unmodified-since",
        "range",
    ] {
        text.push_str(&format!("{}\n", header(name)));
    }
    let mut ms: Vec<&(String, String)> = headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-ms-"))
        .collect();
    ms.sort();
    for (k, v) in ms {
        text.push_str(&format!("{k}:{v}\n"));
    }
    text.push_str(&format!("/{}{path}", Azurite::ACCOUNT));
    let mut query: Vec<(String, &str)> = query
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), *v))
        .collect();
    query.sort();
    for (k, v) in query {
        text.push_str(&format!("\n{k}:{v}"));
    }
    let key = BASE64_STANDARD.decode(Azurite::KEY).expect("base64 key");
    let signature = BASE64_STANDARD.encode(hmac_sha256(&key, text.as_bytes()));
    format!("SharedKey {}:{signature}", Azurite::ACCOUNT)
}

/// HMAC-SHA256 (RFC 2104) over `sha2`.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner = Sha256::new()
        .chain_update(block.map(|b| b ^ 0x36))
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(block.map(|b| b ^ 0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

#[test]
fn hmac_matches_rfc_4231_case_2() {
    let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

/// Two moto servers side by side: each makes its own buckets, and the verifier reads back
/// size, SHA-256 and metadata.
#[test]
fn moto_makes_buckets_and_the_verifier_reads_them() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(Moto::start);
        let b = s.spawn(Moto::start);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_ne!(a.endpoint, b.endpoint);
    a.create_bucket("bucket-a");
    b.create_bucket("bucket-b");
    let body = crate::support::noise(70_000, 7);
    a.put_object("bucket-a", "in/one.bin", &body, &[("mtime", "1700000000")]);
    a.put_object("bucket-a", "out/other.bin", b"x", &[]);

    let doc = a.verify("bucket-a", "in/");
    assert_eq!(doc["count"], 1, "{doc}");
    let one = &doc["objects"]["in/one.bin"];
    assert_eq!(one["size"], 70_000);
    assert_eq!(one["sha256"], sha256_hex(&body));
    assert_eq!(one["metadata"]["mtime"], "1700000000");
    // The other server has its own, empty bucket.
    assert_eq!(b.verify("bucket-b", "")["count"], 0);
}

/// Two Azurites side by side: containers made with a Shared Key request, a blob with
/// metadata read back by the verifier.
#[test]
fn azurite_makes_containers_and_the_verifier_reads_them() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(Azurite::start);
        let b = s.spawn(Azurite::start);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_ne!(a.endpoint, b.endpoint);
    a.create_container("cont-a");
    b.create_container("cont-b");
    let (status, body) = a.request("PUT", "cont-a", &[("restype", "container")], &[], &[]);
    assert_eq!(status, 409, "a second create is refused: {body}");
    let data = crate::support::noise(70_000, 8);
    a.put_blob("cont-a", "in/one.bin", &data, &[("mtime", "1700000000")]);
    a.put_blob("cont-a", "out/other.bin", b"x", &[]);

    let doc = a.verify("cont-a", "in/");
    assert_eq!(doc["count"], 1, "{doc}");
    let one = &doc["objects"]["in/one.bin"];
    assert_eq!(one["size"], 70_000);
    assert_eq!(one["sha256"], sha256_hex(&data));
    assert_eq!(one["metadata"]["mtime"], "1700000000");
    assert_eq!(b.verify("cont-b", "")["count"], 0);
}

/// An emulator that cannot start fails the test at once, with what it printed.
#[test]
#[should_panic(expected = "exited with")]
fn an_emulator_that_exits_says_why() {
    let mut cmd = Command::new(tool("venv/bin/moto_server"));
    cmd.args(["-H", "127.0.0.1", "-p", "not-a-port"]);
    spawn_listening(cmd, "moto_server", "Running on http://");
}
