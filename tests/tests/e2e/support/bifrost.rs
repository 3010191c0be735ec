//! A real `bifrost serve` under test: starting, stopping and restarting it, and its API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{bin, kill_group, stable_addr, wait_for, Lines, Started, TestCa};

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
            ("PUT", Some(b)) => with_auth(self.http.put(&url), &auth).send_json(b),
            other => panic!("unsupported request {other:?}"),
        };
        let mut res = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        answer(&mut res)
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
        answer(&mut res)
    }

    /// GET with arbitrary headers and no token.
    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = self.http.get(&format!("{}{}", self.url, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut res = req.call().unwrap();
        answer(&mut res)
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

/// An answer's status and its body as JSON (or as a string when it is not JSON).
pub fn answer(res: &mut ureq::http::Response<ureq::Body>) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.body_mut().read_to_string().unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
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
