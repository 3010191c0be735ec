//! Object-store emulators for the end-to-end tests: moto (S3) and Azurite (Azure Blob), one
//! process per test on a port the kernel chose, and `tests/verify_objects.py`, which reads the
//! objects back with the services' own Python SDKs. scripts/setup installs all three into
//! `$MOVER_TOOLS` (default `~/.cache/mover-tools`).

mod azurite;
mod moto;

pub use azurite::Azurite;
pub use moto::Moto;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{wait_for, Lines, Started};

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
