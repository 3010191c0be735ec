//! Test harness: real `bifrost` and `agent` processes on loopback, certificates made here.

mod agent;
mod bifrost;
mod forward;
mod session;

pub use agent::Agent;
pub use bifrost::Bifrost;
pub use forward::Forwarder;
pub use session::{one_time_password, Session};

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Where cargo put the binaries under test (next to this test executable's `deps/`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins` before the tests",
        path.display()
    );
    path
}

/// Polls `f` until it returns `Some`, or panics after `timeout` with `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A test certificate authority and a Bifrost certificate it issued for 127.0.0.1.
pub struct TestCa {
    /// CA certificate, PEM.
    pub ca_pem: String,
    /// Files: CA, server cert, server key.
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl TestCa {
    pub fn new(dir: &Path) -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Mover test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let ca_file = dir.join("ca.pem");
        let cert_file = dir.join("bifrost-cert.pem");
        let key_file = dir.join("bifrost-key.pem");
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        Self {
            ca_pem: ca_cert.pem(),
            ca_file,
            cert_file,
            key_file,
        }
    }
}

/// Collects a child's output lines in the background.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    pub fn follow(&self, stream: impl Read + Send + 'static) {
        let lines = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                // A terminal (`script`'s pty) ends lines with CR LF.
                let line = line.strip_suffix('\r').map(str::to_owned).unwrap_or(line);
                lines.lock().unwrap().push(line);
            }
        });
    }

    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn wait_line(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.wait_line_within(what, Duration::from_secs(20), pred)
    }

    pub fn wait_line_within(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        wait_for(timeout, what, || self.all().into_iter().find(|l| pred(l)))
    }
}

/// A process started in its own group: killed with its group unless handed on (a panic while
/// it starts must not leave it running after the test).
pub struct Started(pub Option<Child>);

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            kill_group(child);
        }
    }
}

/// Kills `child`'s process group, then reaps `child`.
pub fn kill_group(child: &mut Child) {
    // Only while it is not reaped: its id cannot be another group's yet.
    if let Ok(None) = child.try_wait() {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}
/// A free loopback address whose port is below the kernel's ephemeral range: no other test's
/// `:0` listener and no outgoing connection can take it while a Bifrost that listened there is
/// restarted on it.
pub fn stable_addr() -> String {
    let mut seed = [0u8; 2];
    loop {
        getrandom::fill(&mut seed).unwrap();
        let port = 10_000 + u16::from_le_bytes(seed) % 22_000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return format!("127.0.0.1:{port}");
        }
    }
}

/// A free port from the kernel (an ephemeral one).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `agent ARGS` with `MOVER_AGENT_HOME=home`.
pub fn cli(home: &Path, args: &[&str]) -> Output {
    Command::new(bin("agent"))
        .args(args)
        .env("MOVER_AGENT_HOME", home)
        .stdin(Stdio::null())
        .output()
        .expect("run agent")
}

/// Stdout lines of an output.
pub fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Deterministic pseudo-random bytes (xorshift), cheap enough for hundreds of MiB.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Everything a typical test needs: a temp folder, a CA, Bifrost and an authorized agent.
pub struct World {
    pub dir: tempfile::TempDir,
    pub ca: TestCa,
    pub bifrost: Bifrost,
    pub agent: Agent,
    pub share: PathBuf,
    pub connector: String,
}

/// An agent in `dir/home` sharing `share`, authorized at `bifrost` as "fs1"; with its id.
pub fn authorized_agent(
    dir: &Path,
    bifrost: &Bifrost,
    ca: &TestCa,
    share: &Path,
) -> (Agent, String) {
    let agent = Agent::start_for(&dir.join("home"), bifrost, ca, share);
    bifrost.wait_connector("the agent to wait for authorization", |c| {
        c["state"] == "waiting"
    });
    let connector = bifrost.authorize(&agent.key(), "fs1")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    agent.wait_status("authorized as fs1", Duration::from_secs(10));
    (agent, connector)
}

impl World {
    /// Brings up Bifrost and an agent sharing `share/`, authorized as "fs1".
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(dir.path());
        let bifrost = Bifrost::start(dir.path(), &ca);
        let share = dir.path().join("share");
        std::fs::create_dir_all(&share).unwrap();
        let (agent, connector) = authorized_agent(dir.path(), &bifrost, &ca, &share);
        Self {
            dir,
            ca,
            bifrost,
            agent,
            share,
            connector,
        }
    }

    /// A path in the share, as a string.
    pub fn src(&self, rel: &str) -> String {
        self.share.join(rel).to_str().unwrap().to_owned()
    }

    /// Browses `path` through the API.
    pub fn browse(&self, path: &str) -> (u16, Value) {
        let q = form_encode(path);
        self.bifrost.api(
            "GET",
            &format!("/api/v1/connectors/{}/browse?path={q}", self.connector),
            None,
        )
    }
}

/// Percent-encodes a query value.
pub fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
