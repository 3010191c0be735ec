//! `agent service`: installs the agent as an always-on service (a systemd unit on Linux: system
//! wide under a dedicated user, or per user at login), removes it, and reports on it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context};

/// The unit's name.
pub const UNIT: &str = "mover-agent.service";
/// The dedicated user (and group) of the system service.
pub const USER: &str = "mover-agent";
/// The system service's home: key, config and logs.
pub const SYSTEM_HOME: &str = "/var/lib/mover-agent";

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
}

#[derive(clap::Args)]
struct Scope {
    /// This user's service, started at login
    #[arg(long, conflicts_with = "system")]
    user: bool,
    /// The machine's service, running as the dedicated user `mover-agent` (the default)
    #[arg(long)]
    system: bool,
    /// Write under this folder instead of `/` (for packaging and tests); touches no systemd
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

#[derive(clap::Args)]
struct InstallArgs {
    #[command(flatten)]
    scope: Scope,
    /// Write and enable the unit but do not start it now
    #[arg(long)]
    no_start: bool,
    #[command(flatten)]
    settings: crate::commands::SettingsArgs,
}

/// Which service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// System wide, as `mover-agent`, with the right to read every file.
    System,
    /// This user's, at login.
    User,
}

impl Scope {
    fn kind(&self) -> Kind {
        if self.user {
            Kind::User
        } else {
            Kind::System
        }
    }
}

/// The unit text. The system service reads the shares through `CAP_DAC_READ_SEARCH` and may
/// write nothing but its own home; it gets 40 s to stop so reads in flight can finish.
pub fn unit(kind: Kind, exe: &Path, home: &Path) -> String {
    let exe = exe.display();
    let home = home.display();
    match kind {
        Kind::System => format!(
            "[Unit]
Description=Mover Agent (file share connector)
Documentation=https://github.com/mover-agent
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={USER}
Group={USER}
Environment=MOVER_AGENT_HOME={home}
Environment=MOVER_AGENT_CONTROL=/run/mover-agent/agent.sock
ExecStart={exe} start
StateDirectory=mover-agent
StateDirectoryMode=0700
RuntimeDirectory=mover-agent
RuntimeDirectoryMode=0750
AmbientCapabilities=CAP_DAC_READ_SEARCH
CapabilityBoundingSet=CAP_DAC_READ_SEARCH
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
ReadWritePaths={home}
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
Restart=on-failure
RestartSec=5
TimeoutStopSec=40

[Install]
WantedBy=multi-user.target
"
        ),
        Kind::User => format!(
            "[Unit]
Description=Mover Agent (file share connector)
After=network-online.target

[Service]
Type=simple
Environment=MOVER_AGENT_HOME={home}
ExecStart={exe} start
Restart=on-failure
RestartSec=5
TimeoutStopSec=40

[Install]
WantedBy=default.target
"
        ),
    }
}

/// Where the unit file goes, under `root`.
fn unit_path(kind: Kind, root: &Path) -> anyhow::Result<PathBuf> {
    Ok(match kind {
        Kind::System => root.join("etc/systemd/system").join(UNIT),
        Kind::User => {
            let config = std::env::var_os("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
                .context("cannot find this user's config folder (HOME is not set)")?;
            reroot(root, &config.join("systemd/user").join(UNIT))
        }
    })
}

fn reroot(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

fn systemctl(kind: Kind, args: &[&str]) -> anyhow::Result<bool> {
    let mut cmd = Command::new("systemctl");
    if kind == Kind::User {
        cmd.arg("--user");
    }
    let status = cmd
        .args(args)
        .status()
        .context("cannot run systemctl (is this a systemd machine?)")?;
    Ok(status.success())
}

/// Runs `agent service …`.
pub fn run(args: ServiceArgs) -> anyhow::Result<ExitCode> {
    if !cfg!(target_os = "linux") {
        bail!("agent service is available on Linux (systemd) so far; on this platform run `agent start` from the system's own service manager");
    }
    match args.action {
        Action::Install(a) => install(a),
        Action::Uninstall(s) => uninstall(&s),
        Action::Status(s) => status(&s),
    }
}

fn install(a: InstallArgs) -> anyhow::Result<ExitCode> {
    let kind = a.scope.kind();
    let root = a.scope.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let home = match kind {
        Kind::System => PathBuf::from(SYSTEM_HOME),
        Kind::User => mover_agent::AgentHome::from_env()?.dir().to_path_buf(),
    };
    // The service's settings go to its own config file, as `agent start` would save them.
    let home_dir = reroot(&root, &home);
    std::fs::create_dir_all(&home_dir)
        .with_context(|| format!("cannot create {}", home_dir.display()))?;
    a.settings.save_to(&home_dir.join("config.toml"))?;

    let path = unit_path(kind, &root)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&path, unit(kind, &exe, &home))
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("Wrote {}", path.display());
    if a.scope.root.is_some() {
        println!("Not enabled: --root was given (enable it on the target with `systemctl enable --now {UNIT}`).");
        return Ok(ExitCode::SUCCESS);
    }
    if kind == Kind::System {
        ensure_user()?;
        let status = Command::new("chown")
            .args(["-R", &format!("{USER}:{USER}"), SYSTEM_HOME])
            .status()
            .context("cannot run chown")?;
        if !status.success() {
            bail!("cannot give {SYSTEM_HOME} to {USER}");
        }
    }
    systemctl(kind, &["daemon-reload"])?;
    let mut enable = vec!["enable"];
    if !a.no_start {
        enable.push("--now");
    }
    enable.push(UNIT);
    if !systemctl(kind, &enable)? {
        bail!("systemctl could not enable {UNIT}");
    }
    println!(
        "Mover Agent service installed{}; its key: `agent status` (as root for the system service), or {}",
        if a.no_start { "" } else { " and started" },
        home.join("connector.key").display()
    );
    Ok(ExitCode::SUCCESS)
}

fn ensure_user() -> anyhow::Result<()> {
    let known = Command::new("id")
        .arg(USER)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if known {
        return Ok(());
    }
    let status = Command::new("useradd")
        .args([
            "--system",
            "--home-dir",
            SYSTEM_HOME,
            "--shell",
            "/usr/sbin/nologin",
            "--user-group",
            USER,
        ])
        .status()
        .context("cannot run useradd")?;
    if !status.success() {
        bail!("cannot create the user {USER}");
    }
    Ok(())
}

fn uninstall(s: &Scope) -> anyhow::Result<ExitCode> {
    let kind = s.kind();
    let root = s.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let path = unit_path(kind, &root)?;
    if !path.exists() {
        println!(
            "Mover Agent service is not installed ({} does not exist)",
            path.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    if s.root.is_none() {
        // Stopping lets reads in flight finish (TimeoutStopSec=40).
        systemctl(kind, &["disable", "--now", UNIT])?;
    }
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    if s.root.is_none() {
        systemctl(kind, &["daemon-reload"])?;
    }
    println!(
        "Removed {}; the agent's home (key, config, logs) is kept",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn status(s: &Scope) -> anyhow::Result<ExitCode> {
    let kind = s.kind();
    let root = s.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let path = unit_path(kind, &root)?;
    if !path.exists() {
        println!("Mover Agent service is not installed");
        return Ok(ExitCode::FAILURE);
    }
    println!("Mover Agent service installed: {}", path.display());
    if s.root.is_none() {
        let state = |what: &str| {
            let mut cmd = Command::new("systemctl");
            if kind == Kind::User {
                cmd.arg("--user");
            }
            cmd.args([what, UNIT])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_else(|e| format!("unknown ({e})"))
        };
        println!("enabled: {}", state("is-enabled"));
        println!("running: {}", state("is-active"));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_unit_is_hardened_and_reads_shares() {
        let u = unit(
            Kind::System,
            Path::new("/usr/bin/agent"),
            Path::new(SYSTEM_HOME),
        );
        for line in [
            "User=mover-agent",
            "ExecStart=/usr/bin/agent start",
            "Environment=MOVER_AGENT_HOME=/var/lib/mover-agent",
            "AmbientCapabilities=CAP_DAC_READ_SEARCH",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ReadWritePaths=/var/lib/mover-agent",
            "WantedBy=multi-user.target",
        ] {
            assert!(u.lines().any(|l| l == line), "{line} missing:\n{u}");
        }
        let user = unit(
            Kind::User,
            Path::new("/opt/agent"),
            Path::new("/home/a/.config/moveragent"),
        );
        assert!(user.contains("WantedBy=default.target"));
        assert!(!user.contains("User="));
    }

    #[test]
    fn paths_go_under_the_root() {
        let root = Path::new("/tmp/r");
        assert_eq!(
            unit_path(Kind::System, root).unwrap(),
            Path::new("/tmp/r/etc/systemd/system/mover-agent.service")
        );
        assert_eq!(
            reroot(root, Path::new("/var/lib/x")),
            Path::new("/tmp/r/var/lib/x")
        );
    }
}
