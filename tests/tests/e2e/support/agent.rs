//! A real `agent start` under test, in its own home; its logs checked for keys when it stops.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::{bin, cli, wait_for, Bifrost, Lines, TestCa};

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
