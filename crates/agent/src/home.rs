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

/// The system service's control socket on Linux (systemd makes its folder).
pub const SYSTEM_CONTROL_LINUX: &str = "/run/mover-agent/agent.sock";
/// The system service's control socket on macOS, which has no /run.
pub const SYSTEM_CONTROL_MACOS: &str = "/var/run/mover-agent/agent.sock";

/// Where the system service's control channel is, for the CLI to find when no agent runs in the
/// caller's own home (`MOVER_AGENT_SYSTEM_CONTROL` moves it, for tests): a socket on Linux and
/// macOS, the pipe of the service's home on Windows.
pub fn system_control() -> String {
    std::env::var("MOVER_AGENT_SYSTEM_CONTROL")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(default_system_control)
}

#[cfg(windows)]
fn default_system_control() -> String {
    AgentHome::at(windows_service_home()).control_endpoint()
}

#[cfg(not(windows))]
fn default_system_control() -> String {
    if cfg!(target_os = "macos") {
        SYSTEM_CONTROL_MACOS
    } else {
        SYSTEM_CONTROL_LINUX
    }
    .to_owned()
}

/// The Windows service's home, `%ProgramData%\Mover\Agent`: services run without a user
/// profile, so the machine's data folder holds their key, config and logs.
#[cfg(windows)]
pub fn windows_service_home() -> PathBuf {
    std::env::var_os("ProgramData")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
        .join("Mover")
        .join("Agent")
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
        // Private from the mkdir on (no window at the umask's mode): it holds the key.
        crate::logging::create_private_dir(&self.dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // A control socket outside the home (the system service's) needs its folder too:
            // systemd makes it (RuntimeDirectory), launchd does not, and /var/run is emptied at
            // boot. Only the service's user and group may go in.
            let socket_dir = std::env::var_os(CONTROL_ENV)
                .filter(|p| !p.is_empty())
                .and_then(|p| Path::new(&p).parent().map(Path::to_path_buf));
            if let Some(dir) = socket_dir.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
                std::fs::create_dir_all(&dir)?;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750))?;
            }
        }
        Ok(())
    }
}
