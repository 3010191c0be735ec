//! `agent service`: installs the agent as an always-on service, removes it, and reports on it:
//! a systemd unit on Linux, a launchd job on macOS, a service-manager service on Windows.

// Used by the Windows service only, but built everywhere so that its tests run on Linux too.
#[cfg_attr(not(windows), allow(dead_code))]
mod drives;
mod launchd;
mod systemd;
#[cfg(windows)]
mod windows;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

/// Options of `agent service`.
#[derive(clap::Args)]
pub struct ServiceArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Install the agent as a service and start it
    Install(InstallArgs),
    /// Stop the service and remove it (its home with the key is kept)
    Uninstall(Scope),
    /// Say whether the service is installed, enabled and running
    Status(Scope),
    /// Run as the Windows service (the service manager starts this; not for people)
    #[command(hide = true)]
    Run,
}

#[derive(clap::Args)]
struct Scope {
    /// This user's service, started at login
    #[arg(long, conflicts_with = "system")]
    user: bool,
    /// The machine's service (the default): on Linux as the dedicated user `mover-agent`, on
    /// macOS as root, on Windows as LocalSystem
    #[arg(long)]
    system: bool,
    /// Write under this folder instead of `/` (for packaging and tests); touches no service
    /// manager
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Write another platform's files (with --root): lets the launchd files be built and
    /// checked on Linux
    #[arg(long, value_enum, hide = true, requires = "root")]
    platform: Option<Platform>,
}

#[derive(clap::Args)]
struct InstallArgs {
    #[command(flatten)]
    scope: Scope,
    /// Write and enable the service but do not start it now
    #[arg(long)]
    no_start: bool,
    #[command(flatten)]
    settings: crate::commands::SettingsArgs,
}

/// Which service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The machine's, started at boot, with the right to read the shares.
    System,
    /// This user's, at login.
    User,
}

/// Which service manager to write for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Platform {
    /// systemd.
    Linux,
    /// launchd.
    Macos,
    /// The Windows service control manager.
    Windows,
}

impl Platform {
    /// The platform this program runs on, if it has a service manager we support.
    pub fn host() -> Option<Self> {
        if cfg!(target_os = "linux") {
            Some(Self::Linux)
        } else if cfg!(target_os = "macos") {
            Some(Self::Macos)
        } else if cfg!(windows) {
            Some(Self::Windows)
        } else {
            None
        }
    }
}

/// What to act on: the platform, the kind of service, and the root it is written under.
#[derive(Debug, Clone)]
pub struct Target {
    /// The service manager.
    pub platform: Platform,
    /// System or user.
    pub kind: Kind,
    /// `--root`: write files under it and leave the service manager alone.
    pub root: Option<PathBuf>,
}

impl Target {
    fn of(scope: &Scope) -> anyhow::Result<Self> {
        let platform = match scope.platform.or_else(Platform::host) {
            Some(p) => p,
            None => bail!(
                "agent service supports Linux (systemd), macOS (launchd) and Windows; on this platform run `agent start` from the system's own service manager"
            ),
        };
        Ok(Self {
            platform,
            kind: if scope.user { Kind::User } else { Kind::System },
            root: scope.root.clone(),
        })
    }

    /// Whether to talk to the service manager (no `--root`).
    pub fn live(&self) -> bool {
        self.root.is_none()
    }

    /// `path` as it lies under the root.
    pub fn reroot(&self, path: &Path) -> PathBuf {
        match &self.root {
            Some(root) => reroot(root, path),
            None => path.to_path_buf(),
        }
    }
}

/// `path` moved under `root` (`/etc/x` under `/tmp/r` is `/tmp/r/etc/x`).
pub fn reroot(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Saves the service's settings to the config file in its home (`home_dir`, already under the
/// root), as `agent start` would, and returns the config and the file's previous bytes, so an
/// install that refuses afterwards can put it back.
pub fn save_settings(
    settings: crate::commands::SettingsArgs,
    home_dir: &Path,
) -> anyhow::Result<(mover_agent::Config, Saved)> {
    std::fs::create_dir_all(home_dir)
        .with_context(|| format!("cannot create {}", home_dir.display()))?;
    let path = home_dir.join("config.toml");
    let before = match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let config = settings.save_to(&path)?;
    Ok((config, Saved { path, before }))
}

/// A config file as it was before an install saved settings into it.
pub struct Saved {
    path: PathBuf,
    before: Option<Vec<u8>>,
}

impl Saved {
    /// Puts the file back as it was (an install that refuses leaves no trace of its settings).
    pub fn restore(self) {
        let _ = match self.before {
            Some(bytes) => std::fs::write(&self.path, bytes),
            None => std::fs::remove_file(&self.path),
        };
    }
}

/// Runs `agent service …`.
pub fn run(args: ServiceArgs) -> anyhow::Result<ExitCode> {
    let scope = match &args.action {
        Action::Run => return run_windows_service(),
        Action::Install(a) => &a.scope,
        Action::Uninstall(s) | Action::Status(s) => s,
    };
    let target = Target::of(scope)?;
    match (target.platform, args.action) {
        (_, Action::Run) => run_windows_service(),
        (Platform::Linux, Action::Install(a)) => systemd::install(&target, a.no_start, a.settings),
        (Platform::Linux, Action::Uninstall(_)) => systemd::uninstall(&target),
        (Platform::Linux, Action::Status(_)) => systemd::status(&target),
        (Platform::Macos, Action::Install(a)) => launchd::install(&target, a.no_start, a.settings),
        (Platform::Macos, Action::Uninstall(_)) => launchd::uninstall(&target),
        (Platform::Macos, Action::Status(_)) => launchd::status(&target),
        (Platform::Windows, action) => windows_action(&target, action),
    }
}

#[cfg(windows)]
fn windows_action(target: &Target, action: Action) -> anyhow::Result<ExitCode> {
    if target.root.is_some() {
        bail!("--root does not apply on Windows: its service lives in the service manager, not in files");
    }
    match action {
        Action::Install(a) => windows::install(target.kind, a.no_start, a.settings),
        Action::Uninstall(_) => windows::uninstall(target.kind),
        Action::Status(_) => windows::status(target.kind),
        Action::Run => run_windows_service(),
    }
}

#[cfg(not(windows))]
fn windows_action(_: &Target, _: Action) -> anyhow::Result<ExitCode> {
    bail!("--platform windows does not apply with --root: the Windows service lives in the service manager, not in files")
}

#[cfg(windows)]
fn run_windows_service() -> anyhow::Result<ExitCode> {
    windows::run()
}

#[cfg(not(windows))]
fn run_windows_service() -> anyhow::Result<ExitCode> {
    bail!("agent service run is the Windows service's entry point; here, run `agent start`")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        service: ServiceArgs,
    }

    fn parse(args: &[&str]) -> Result<ServiceArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("service").chain(args.iter().copied()))
            .map(|c| c.service)
    }

    #[test]
    fn another_platforms_files_are_written_only_under_a_root() {
        let refused = parse(&["status", "--platform", "macos"]).err().unwrap();
        assert_eq!(
            refused.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let install = parse(&["install", "--platform", "macos", "--root", root]).unwrap();
        assert_eq!(run(install).unwrap(), ExitCode::SUCCESS);
        assert!(dir
            .path()
            .join("Library/LaunchDaemons/com.mover.agent.plist")
            .is_file());
        let status = parse(&["status", "--platform", "macos", "--root", root]).unwrap();
        assert_eq!(run(status).unwrap(), ExitCode::SUCCESS);
        // The Linux unit was not written: each platform has its own files.
        let status = parse(&["status", "--platform", "linux", "--root", root]).unwrap();
        assert_eq!(run(status).unwrap(), ExitCode::FAILURE);
    }

    #[test]
    fn the_windows_service_has_no_files_to_write_under_a_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let install = parse(&["install", "--platform", "windows", "--root", root]).unwrap();
        let e = run(install).err().unwrap().to_string();
        assert!(e.contains("service manager, not in files"), "{e}");
        if !cfg!(windows) {
            let e = run(parse(&["run"]).unwrap()).err().unwrap().to_string();
            assert!(e.contains("agent start"), "{e}");
        }
    }

    #[test]
    fn a_refused_install_puts_the_config_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "relay = \"https://old.example\"\n").unwrap();
        let (_, saved) = save_settings(Default::default(), dir.path()).unwrap();
        std::fs::write(&path, "relay = \"https://new.example\"\n").unwrap();
        saved.restore();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "relay = \"https://old.example\"\n"
        );
        let fresh = tempfile::tempdir().unwrap();
        let (_, saved) = save_settings(Default::default(), fresh.path()).unwrap();
        assert!(fresh.path().join("config.toml").exists());
        saved.restore();
        assert!(!fresh.path().join("config.toml").exists());
    }
}
