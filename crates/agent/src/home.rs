//! Where the agent keeps its key, config, control socket and logs.

use std::path::{Path, PathBuf};

/// Environment variable that moves the agent's whole home.
pub const HOME_ENV: &str = "MOVER_AGENT_HOME";

/// The agent's folders, resolved once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentHome {
    dir: PathBuf,
    logs: PathBuf,
}

/// Names the control socket's path when it is not the home's (the system service sets it).
pub const CONTROL_ENV: &str = "MOVER_AGENT_CONTROL";

/// Where the system service's control socket is, for the CLI to find when no agent runs in the
/// caller's own home (`MOVER_AGENT_SYSTEM_CONTROL` moves it, for tests).
pub fn system_control() -> String {
    std::env::var("MOVER_AGENT_SYSTEM_CONTROL")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/run/mover-agent/agent.sock".to_owned())
}

impl AgentHome {
    /// Resolves the home from `MOVER_AGENT_HOME`, or the platform's usual folders.
    pub fn from_env() -> std::io::Result<Self> {
        match std::env::var_os(HOME_ENV) {
            Some(dir) if !dir.is_empty() => Ok(Self::at(PathBuf::from(dir))),
            _ => Self::platform(),
        }
    }

    /// A home with everything, logs included, under `dir`.
    pub fn at(dir: PathBuf) -> Self {
        let logs = dir.join("logs");
        Self { dir, logs }
    }

    fn platform() -> std::io::Result<Self> {
        let missing = || std::io::Error::other("cannot find the user's home folder");
        let project =
            directories::ProjectDirs::from("com", "Mover", "Mover Agent").ok_or_else(missing)?;
        let base = directories::BaseDirs::new().ok_or_else(missing)?;
        let dir = project.config_dir().to_path_buf();
        let logs = if cfg!(target_os = "macos") {
            base.home_dir().join("Library/Logs/Mover")
        } else if cfg!(windows) {
            base.data_local_dir().join("Mover")
        } else {
            base.state_dir()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| base.home_dir().join(".local/state"))
                .join("mover")
        };
        Ok(Self { dir, logs })
    }

    /// The home folder itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The connector key file.
    pub fn key_file(&self) -> PathBuf {
        self.dir.join("connector.key")
    }

    /// Where a key replaced by `--reset-key` waits until Bifrost has retired it.
    pub fn previous_key_file(&self) -> PathBuf {
        self.dir.join("connector.key.previous")
    }

    /// The config file that `start` writes.
    pub fn config_file(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// The log folder.
    pub fn log_dir(&self) -> &Path {
        &self.logs
    }

    /// The control channel: a Unix socket path, or a pipe name on Windows.
    pub fn control_endpoint(&self) -> String {
        #[cfg(unix)]
        {
            // The system service puts its socket in /run/mover-agent (see `SYSTEM_CONTROL`).
            match std::env::var(CONTROL_ENV) {
                Ok(path) if !path.is_empty() => path,
                _ => self.dir.join("agent.sock").to_string_lossy().into_owned(),
            }
        }
        #[cfg(windows)]
        {
            // Pipe names are global, so one derived from the home keeps two homes apart.
            let digest = blake3::hash(self.dir.to_string_lossy().to_lowercase().as_bytes());
            format!(r"\\.\pipe\mover-agent-{}", &digest.to_hex()[..16])
        }
    }

    /// Creates the home folder (mode 0700 on Unix).
    pub fn create(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
}
