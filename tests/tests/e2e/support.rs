//! Test harness: real `bifrost` and `agent` processes on loopback, certificates made here.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

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

/// A running Bifrost.
pub struct Bifrost {
    child: Child,
    pub url: String,
    pub addr: String,
    pub fingerprint: String,
    pub token: String,
    pub data: PathBuf,
    pub stdout: Lines,
    pub stderr: Lines,
    http: ureq::Agent,
}

impl Bifrost {
    /// Starts Bifrost on a free port with a certificate from `ca`.
    pub fn start(dir: &Path, ca: &TestCa) -> Self {
        let data = dir.join("bifrost-data");
        Self::spawn(&data, &stable_addr(), Some(ca))
    }

    /// Starts Bifrost with `data` and `listen`, with `ca`'s certificate or a self-signed one.
    pub fn spawn(data: &Path, listen: &str, ca: Option<&TestCa>) -> Self {
        Self::spawn_cmd(Command::new(bin("bifrost")), data, listen, ca, &[])
    }

    /// Starts Bifrost through `wrapper` (a command such as `strace ...` that the Bifrost
    /// command line is appended to).
    pub fn spawn_wrapped(wrapper: Command, data: &Path, listen: &str, ca: Option<&TestCa>) -> Self {
        let mut cmd = wrapper;
        cmd.arg(bin("bifrost"));
        Self::spawn_cmd(cmd, data, listen, ca, &[])
    }

    /// Like `spawn`, with more `serve` options.
    pub fn spawn_with(data: &Path, listen: &str, ca: Option<&TestCa>, extra: &[&str]) -> Self {
        Self::spawn_cmd(Command::new(bin("bifrost")), data, listen, ca, extra)
    }

    /// Starts Bifrost under `strace`, logging the file-system calls in `syscalls` to `log`.
    pub fn start_traced(dir: &Path, ca: &TestCa, syscalls: &str, log: &Path) -> Self {
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "-y", "-qq", "-e", &format!("trace={syscalls}"), "-o"])
            .arg(log)
            .arg(bin("bifrost"));
        Self::spawn_cmd(cmd, &dir.join("bifrost-data"), "127.0.0.1:0", Some(ca), &[])
    }

    fn spawn_cmd(
        mut cmd: Command,
        data: &Path,
        listen: &str,
        ca: Option<&TestCa>,
        extra: &[&str],
    ) -> Self {
        cmd.args(["serve", "--listen", listen, "--data"])
            .arg(data)
            .args(extra);
        if let Some(ca) = ca {
            cmd.arg("--tls-cert")
                .arg(&ca.cert_file)
                .arg("--tls-key")
                .arg(&ca.key_file);
        }
        cmd.env("BIFROST_LOG", "info,bifrost=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        // Its own process group, so that killing it kills a traced Bifrost too (strace 6.1
        // leaves its tracee running when it is killed).
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = Started(Some(cmd.spawn().expect("spawn bifrost")));
        let (stdout, stderr) = (Lines::default(), Lines::default());
        let running = child.0.as_mut().expect("spawned");
        stdout.follow(running.stdout.take().unwrap());
        stderr.follow(running.stderr.take().unwrap());
        // A Bifrost that exits first (its port taken) says so at once, with its reason.
        let url = wait_for(Duration::from_secs(20), "Bifrost's listening line", || {
            if let Ok(Some(status)) = running.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!("Bifrost exited with {status}: {:?}", stderr.all());
            }
            stdout
                .all()
                .into_iter()
                .find(|l| l.starts_with("Bifrost listening on "))
        })
        .trim_start_matches("Bifrost listening on ")
        .to_owned();
        let fingerprint = stdout
            .wait_line("the fingerprint line", |l| {
                l.starts_with("TLS certificate SHA-256 fingerprint: ")
            })
            .trim_start_matches("TLS certificate SHA-256 fingerprint: ")
            .to_owned();
        let token = std::fs::read_to_string(data.join("admin.token"))
            .unwrap()
            .trim()
            .to_owned();
        let addr = url.trim_start_matches("https://").to_owned();
        let http = http_client(ca.map(|c| c.ca_pem.as_str()));
        Self {
            child: child.0.take().expect("spawned"),
            url,
            addr,
            fingerprint,
            token,
            data: data.to_owned(),
            stdout,
            stderr,
            http,
        }
    }

    /// The HTTPS client that trusts this Bifrost's certificate (answers of any status are `Ok`).
    pub fn client(&self) -> ureq::Agent {
        self.http.clone()
    }

    /// Bifrost's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Bifrost's resident memory now, from `/proc`, in MiB.
    pub fn rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib / 1024
    }

    /// Kills Bifrost with SIGKILL.
    pub fn kill(&mut self) {
        kill_group(&mut self.child);
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends SIGTERM (what systemd sends to stop it).
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit, for up to `timeout`.
    pub fn wait_exit_within(&mut self, timeout: Duration) -> std::process::ExitStatus {
        wait_for(timeout, "Bifrost to exit", || {
            self.child.try_wait().unwrap()
        })
    }

    /// Starts a new Bifrost on the same data and port.
    pub fn restart(&mut self, ca: &TestCa) {
        self.kill();
        let data = self.data.clone();
        let addr = self.addr.clone();
        // The port may take a moment to be free again.
        *self = wait_for(Duration::from_secs(10), "Bifrost to restart", || {
            std::panic::catch_unwind(|| Self::spawn(&data, &addr, Some(ca))).ok()
        });
    }

    /// Sends an API request with the admin token; returns status and JSON body.
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.request(method, path, body, Some(&self.token))
    }

    /// Sends an API request with an optional bearer token.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let url = format!("{}{}", self.url, path);
        let auth = token.map(|t| format!("Bearer {t}"));
        let result = match (method, body) {
            ("GET", _) => with_auth(self.http.get(&url), &auth).call(),
            ("DELETE", _) => with_auth(self.http.delete(&url), &auth).call(),
            ("POST", Some(b)) => with_auth(self.http.post(&url), &auth).send_json(b),
            ("POST", None) => with_auth(self.http.post(&url), &auth).send_empty(),
            ("PATCH", Some(b)) => with_auth(self.http.patch(&url), &auth).send_json(b),
            other => panic!("unsupported request {other:?}"),
        };
        let mut res = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = res.status().as_u16();
        let text = res.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Sends a raw body with a content type.
    pub fn post_raw(&self, path: &str, content_type: &str, body: &str) -> (u16, Value) {
        let url = format!("{}{}", self.url, path);
        let mut res = self
            .http
            .post(&url)
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", content_type)
            .send(body)
            .unwrap();
        let status = res.status().as_u16();
        let text = res.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// GET with arbitrary headers and no token.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self.http.get(&format!("{}{}", self.url, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut res = req.call().unwrap();
        let status = res.status().as_u16();
        let text = res.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// The connector list.
    pub fn connectors(&self) -> Vec<Value> {
        let (status, body) = self.api("GET", "/api/v1/connectors", None);
        assert_eq!(status, 200, "{body}");
        body.as_array().unwrap().clone()
    }

    /// Authorizes `key`, once its agent has dialed in (it may still be connecting: a 404 is
    /// retried for a while); returns the connector.
    pub fn authorize(&self, key: &str, name: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, body) = self.api(
                "POST",
                "/api/v1/connectors",
                Some(json!({"key": key, "name": name})),
            );
            if status == 404 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            assert_eq!(status, 201, "{body}");
            return body;
        }
    }

    /// Waits until the connector list has an entry matching `pred`.
    pub fn wait_connector(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        wait_for(Duration::from_secs(20), what, || {
            self.connectors().into_iter().find(|c| pred(c))
        })
    }

    /// Creates a job and returns its id.
    pub fn create_job(
        &self,
        connector: &str,
        sources: &[&str],
        dest: &Path,
        concurrency: Option<u32>,
    ) -> String {
        let mut body = json!({"connector": connector, "sources": sources, "destination": {"kind": "folder", "path": dest}});
        if let Some(c) = concurrency {
            body["concurrency"] = json!(c);
        }
        let (status, job) = self.api("POST", "/api/v1/jobs", Some(body));
        assert_eq!(status, 201, "{job}");
        job["id"].as_str().unwrap().to_owned()
    }

    /// The job's JSON.
    pub fn job(&self, id: &str) -> Value {
        let (status, job) = self.api("GET", &format!("/api/v1/jobs/{id}"), None);
        assert_eq!(status, 200, "{job}");
        job
    }

    /// Waits until the job has finished, and returns it.
    pub fn wait_job(&self, id: &str, timeout: Duration) -> Value {
        wait_for(timeout, "the job to finish", || {
            let job = self.job(id);
            let state = job["state"].as_str().unwrap().to_owned();
            ["completed", "completed_with_errors", "failed", "cancelled"]
                .contains(&state.as_str())
                .then_some(job)
        })
    }

    /// The job's per-file report.
    pub fn files(&self, id: &str) -> Vec<Value> {
        let (status, body) = self.api("GET", &format!("/api/v1/jobs/{id}/files"), None);
        assert_eq!(status, 200, "{body}");
        body["files"].as_array().unwrap().clone()
    }
}

impl Drop for Bifrost {
    fn drop(&mut self) {
        self.kill();
    }
}

fn with_auth<B>(req: ureq::RequestBuilder<B>, auth: &Option<String>) -> ureq::RequestBuilder<B> {
    match auth {
        Some(a) => req.header("Authorization", a),
        None => req,
    }
}

fn http_client(ca_pem: Option<&str>) -> ureq::Agent {
    use ureq::tls::{Certificate, RootCerts, TlsConfig};
    let tls = match ca_pem {
        Some(pem) => {
            let cert = Certificate::from_pem(pem.as_bytes()).unwrap().to_owned();
            TlsConfig::builder()
                .root_certs(RootCerts::Specific(Arc::new(vec![cert])))
                .build()
        }
        // A self-signed Bifrost: the tests that use it check the fingerprint separately.
        None => TlsConfig::builder().disable_verification(true).build(),
    };
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// A running `agent start`, in its own home.
pub struct Agent {
    child: Option<Child>,
    pub home: PathBuf,
    pub stdout: Lines,
    keys_seen: Vec<String>,
}

impl Agent {
    /// Runs `agent start ARGS` in `home` and waits for its key.
    pub fn start(home: &Path, args: &[&str]) -> Self {
        Self::start_env(home, args, &[])
    }

    /// Same, with extra environment variables.
    pub fn start_env(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_cmd(Command::new(bin("agent")), home, args, env)
    }

    /// Runs the agent as the unprivileged user `nobody` (tests run as root, which reads
    /// anything): the binary is copied to `dir`, and `dir` and `home` are opened to it.
    pub fn start_as_nobody(dir: &Path, home: &Path, args: &[&str]) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let agent = dir.join("agent-bin");
        std::fs::copy(bin("agent"), &agent).unwrap();
        std::fs::set_permissions(&agent, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(home).unwrap();
        let status = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(home)
            .status()
            .unwrap();
        assert!(status.success());
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(&agent);
        Self::start_cmd(cmd, home, args, &[])
    }

    pub fn start_cmd(mut cmd: Command, home: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        cmd.arg("start")
            .args(args)
            .env("MOVER_AGENT_HOME", home)
            .env("MOVER_LOG", "debug");
        for var in ["HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"] {
            cmd.env_remove(var);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn agent");
        let stdout = Lines::default();
        stdout.follow(child.stdout.take().unwrap());
        stdout.follow(child.stderr.take().unwrap());
        stdout.wait_line("the agent's Ctrl-C line", |l| l == "Ctrl-C To Stop");
        let mut agent = Self {
            child: Some(child),
            home: home.to_owned(),
            stdout,
            keys_seen: vec![],
        };
        let key = agent.key();
        agent.keys_seen.push(key);
        agent
    }

    /// Starts against `bifrost`, trusting the test CA and sharing `share`.
    pub fn start_for(home: &Path, bifrost: &Bifrost, ca: &TestCa, share: &Path) -> Self {
        let (url, ca_file, share) = (
            bifrost.url.clone(),
            ca.ca_file.to_str().unwrap().to_owned(),
            share.to_str().unwrap().to_owned(),
        );
        Self::start(
            home,
            &["--relay", &url, "--relay-ca", &ca_file, "--share", &share],
        )
    }

    /// The key in the agent's home.
    pub fn key(&self) -> String {
        std::fs::read_to_string(self.home.join("connector.key"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Runs `agent ARGS` against this home.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.home, args)
    }

    /// The output of `agent status`.
    pub fn status(&self) -> String {
        String::from_utf8_lossy(&self.cli(&["status"]).stdout).into_owned()
    }

    /// Waits until `agent status` contains `text`.
    pub fn wait_status(&self, text: &str, timeout: Duration) -> String {
        wait_for(timeout, &format!("agent status to say {text:?}"), || {
            let s = self.status();
            s.contains(text).then_some(s)
        })
    }

    /// The agent process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("agent running").id()
    }

    /// Stops the process and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM, as a service manager stops a service.
    pub fn terminate(&self) {
        let pid = self.child.as_ref().expect("agent running").id();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        self.wait_exit_within(Duration::from_secs(15))
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit_within(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("agent running");
        wait_for(timeout, "the agent to exit", || c.try_wait().unwrap())
    }

    /// Notes a key this agent held, so the log check covers it.
    pub fn remember_key(&mut self) {
        let key = self.key();
        self.keys_seen.push(key);
    }

    /// Every log file's text.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        if let Ok(dir) = std::fs::read_dir(self.home.join("logs")) {
            for e in dir.flatten() {
                text.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        text
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
        // Every test doubles as a check that no log file holds a full key.
        if !std::thread::panicking() {
            let logs = self.logs();
            for key in &self.keys_seen {
                assert!(
                    !logs.contains(key.as_str()),
                    "a log file in {} holds the full key",
                    self.home.display()
                );
            }
        }
    }
}

/// A loopback port nothing listens on (bound, then closed).
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

/// A TCP forwarder between the agent and Bifrost that can freeze the link (bytes stop flowing
/// both ways while both sockets stay open, as on a dead WAN path) or cut it, and counts the
/// bytes the agent sent through it.
pub struct Forwarder {
    pub port: u16,
    frozen: Arc<std::sync::atomic::AtomicBool>,
    up: Arc<std::sync::atomic::AtomicU64>,
    live: Arc<Mutex<Vec<std::net::TcpStream>>>,
    /// Every connection made, with the bytes the agent sent on it.
    conns: Connections,
    /// Bytes per second each connection may carry towards Bifrost; 0 is unlimited.
    rate: Arc<std::sync::atomic::AtomicU64>,
}

/// Every connection through a forwarder, with the bytes the agent sent on it.
type Connections = Arc<Mutex<Vec<(std::net::TcpStream, Arc<std::sync::atomic::AtomicU64>)>>>;

impl Forwarder {
    pub fn new(target: &str) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let up = Arc::new(AtomicU64::new(0));
        let live: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let conns: Connections = Arc::default();
        let rate = Arc::new(AtomicU64::new(0));
        let (flag, target, counter, sockets, all, limit) = (
            frozen.clone(),
            target.to_owned(),
            up.clone(),
            live.clone(),
            conns.clone(),
            rate.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                sockets.lock().unwrap().push(client.try_clone().unwrap());
                let mine = Arc::new(AtomicU64::new(0));
                all.lock()
                    .unwrap()
                    .push((client.try_clone().unwrap(), mine.clone()));
                for (mut from, mut to, count) in [
                    (
                        client.try_clone().unwrap(),
                        upstream.try_clone().unwrap(),
                        Some((counter.clone(), mine)),
                    ),
                    (upstream, client, None),
                ] {
                    let flag = flag.clone();
                    let limit = limit.clone();
                    std::thread::spawn(move || {
                        use std::io::Write;
                        let mut buf = vec![0u8; 64 * 1024];
                        let began = Instant::now();
                        let mut moved = 0u64;
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            while flag.load(Ordering::Relaxed) {
                                std::thread::sleep(Duration::from_millis(100));
                            }
                            if let Some((total, mine)) = &count {
                                total.fetch_add(n as u64, Ordering::Relaxed);
                                mine.fetch_add(n as u64, Ordering::Relaxed);
                                moved += n as u64;
                                let rate = limit.load(Ordering::Relaxed);
                                if rate > 0 {
                                    let due = Duration::from_secs_f64(moved as f64 / rate as f64);
                                    if let Some(wait) = due.checked_sub(began.elapsed()) {
                                        std::thread::sleep(wait);
                                    }
                                }
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self {
            port,
            frozen,
            up,
            live,
            conns,
            rate,
        }
    }

    /// Caps each connection's rate towards Bifrost (bytes per second), like a slow uplink.
    pub fn throttle(&self, bytes_per_sec: u64) {
        self.rate
            .store(bytes_per_sec, std::sync::atomic::Ordering::Relaxed);
    }

    /// Bytes the agent sent on each connection made so far, in the order they were made.
    pub fn per_connection(&self) -> Vec<u64> {
        self.conns
            .lock()
            .unwrap()
            .iter()
            .map(|(_, n)| n.load(std::sync::atomic::Ordering::Relaxed))
            .collect()
    }

    /// Closes the `i`th connection made.
    pub fn cut_connection(&self, i: usize) {
        if let Some((s, _)) = self.conns.lock().unwrap().get(i) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Bytes the agent has sent through the forwarder so far.
    pub fn bytes_up(&self) -> u64 {
        self.up.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Closes every connection through the forwarder (new ones still pass).
    pub fn cut(&self) {
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Stops all traffic without closing anything.
    pub fn freeze(&self) {
        self.frozen
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
