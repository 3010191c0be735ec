//! `agent service` on Linux: a systemd unit, system wide under a dedicated user or per user at
//! login.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context};

use super::{reroot, Kind, Target};

/// The unit's name.
pub const UNIT: &str = "mover-agent.service";
/// The dedicated user (and group) of the system service.
pub const USER: &str = "mover-agent";
/// The system service's home: key, config and logs.
pub const SYSTEM_HOME: &str = "/var/lib/mover-agent";

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

/// Installs the unit (and, with auto-update, the service's own copy of the agent).
pub fn install(
    target: &Target,
    no_start: bool,
    settings: crate::commands::SettingsArgs,
) -> anyhow::Result<ExitCode> {
    let kind = target.kind;
    let root = target.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let home = match kind {
        Kind::System => PathBuf::from(SYSTEM_HOME),
        Kind::User => mover_agent::AgentHome::from_env()?.dir().to_path_buf(),
    };
    // The service's settings go to its own config file, as `agent start` would save them.
    let home_dir = reroot(&root, &home);
    let (config, saved) = super::save_settings(settings, &home_dir)?;
    let exe = match service_exe(kind, &exe, &home, &config) {
        Ok(ExecStart::Running) => exe,
        Ok(ExecStart::OwnCopy(copy)) => {
            install_copy(&exe, &reroot(&root, &copy))?;
            copy
        }
        Err(refusal) => {
            saved.restore();
            return Err(refusal);
        }
    };

    let path = unit_path(kind, &root)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&path, unit(kind, &exe, &home))
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("Wrote {}", path.display());
    if !target.live() {
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
    if !no_start {
        enable.push("--now");
    }
    enable.push(UNIT);
    if !systemctl(kind, &enable)? {
        bail!("systemctl could not enable {UNIT}");
    }
    println!(
        "Mover Agent service installed{}; its key: `agent status` (as root for the system service), or {}",
        if no_start { "" } else { " and started" },
        home.join("connector.key").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Which binary the unit starts.
#[derive(Debug, PartialEq, Eq)]
enum ExecStart {
    /// The one running this install.
    Running,
    /// A copy in the service's home, which the service itself may replace when it updates.
    OwnCopy(PathBuf),
}

/// Whether the agent should update itself (`auto_update = true`, set by `--auto-update`).
fn wants_auto_update(config: &mover_agent::Config) -> bool {
    config.auto_update
}

/// Chooses the binary for the unit. A system service that updates itself needs a binary it may
/// write: under `ProtectSystem=strict` only its home is writable, so it runs its own copy in
/// `HOME/bin`. A package's binary (under /usr) is the package manager's to update, so
/// auto-update is refused there rather than left to fail quietly later.
fn service_exe(
    kind: Kind,
    exe: &Path,
    home: &Path,
    config: &mover_agent::Config,
) -> anyhow::Result<ExecStart> {
    if !wants_auto_update(config) {
        return Ok(ExecStart::Running);
    }
    if mover_agent::update::install_kind(exe) == mover_agent::update::InstallKind::Package {
        bail!(
            "{} was installed by a package: it updates through apt (or your package manager), not by itself; install the service without --auto-update (and without `auto_update = true` in {})",
            exe.display(),
            home.join("config.toml").display()
        );
    }
    Ok(match kind {
        Kind::System => ExecStart::OwnCopy(home.join("bin/agent")),
        // A user's service runs as that user, who owns the binary they started it with.
        Kind::User => ExecStart::Running,
    })
}

/// Copies the running agent to `dest` (through a temporary name, because the binary there may
/// be running and cannot be overwritten in place).
fn install_copy(exe: &Path, dest: &Path) -> anyhow::Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dest.with_extension("new");
    std::fs::copy(exe, &tmp)
        .with_context(|| format!("cannot copy {} to {}", exe.display(), tmp.display()))?;
    // `--platform linux --root` may write these files from another OS, without modes.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", tmp.display()))?;
    }
    std::fs::rename(&tmp, dest).with_context(|| format!("cannot move it to {}", dest.display()))?;
    println!(
        "Copied the agent to {} (the service updates this copy)",
        dest.display()
    );
    Ok(())
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

/// Stops and removes the unit.
pub fn uninstall(target: &Target) -> anyhow::Result<ExitCode> {
    let kind = target.kind;
    let root = target.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let path = unit_path(kind, &root)?;
    if !path.exists() {
        println!(
            "Mover Agent service is not installed ({} does not exist)",
            path.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    if target.live() {
        // Stopping lets reads in flight finish (TimeoutStopSec=40).
        systemctl(kind, &["disable", "--now", UNIT])?;
    }
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    if target.live() {
        systemctl(kind, &["daemon-reload"])?;
    }
    println!(
        "Removed {}; the agent's home (key, config, logs) is kept",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Reports whether the unit is installed, enabled and running.
pub fn status(target: &Target) -> anyhow::Result<ExitCode> {
    let kind = target.kind;
    let root = target.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let path = unit_path(kind, &root)?;
    if !path.exists() {
        println!("Mover Agent service is not installed");
        return Ok(ExitCode::FAILURE);
    }
    println!("Mover Agent service installed: {}", path.display());
    if target.live() {
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

    fn auto_update() -> mover_agent::Config {
        mover_agent::Config {
            auto_update: true,
            ..Default::default()
        }
    }

    #[test]
    fn auto_update_runs_the_services_own_copy_and_refuses_packages() {
        let home = Path::new(SYSTEM_HOME);
        let plain = mover_agent::Config::default();
        let exe = Path::new("/opt/mover/agent");
        assert_eq!(
            service_exe(Kind::System, exe, home, &plain).unwrap(),
            ExecStart::Running
        );
        assert_eq!(
            service_exe(Kind::System, exe, home, &auto_update()).unwrap(),
            ExecStart::OwnCopy(PathBuf::from("/var/lib/mover-agent/bin/agent"))
        );
        assert_eq!(
            service_exe(Kind::User, exe, home, &auto_update()).unwrap(),
            ExecStart::Running
        );
        let refused = service_exe(
            Kind::System,
            Path::new("/usr/bin/agent"),
            home,
            &auto_update(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            refused.contains("installed by a package: it updates through apt"),
            "{refused}"
        );
        // Without auto-update a package's binary is what the unit runs.
        assert_eq!(
            service_exe(Kind::System, Path::new("/usr/bin/agent"), home, &plain).unwrap(),
            ExecStart::Running
        );
    }

    #[test]
    fn the_auto_update_unit_runs_a_binary_it_may_replace_and_systemd_accepts_it() {
        let u = unit(
            Kind::System,
            Path::new("/var/lib/mover-agent/bin/agent"),
            Path::new(SYSTEM_HOME),
        );
        for line in [
            "ExecStart=/var/lib/mover-agent/bin/agent start",
            "ReadWritePaths=/var/lib/mover-agent",
            "ProtectSystem=strict",
        ] {
            assert!(u.lines().any(|l| l == line), "{line} missing:\n{u}");
        }

        // systemd checks that ExecStart exists, so the same layout is built in a temp folder.
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("var/lib/mover-agent");
        let bin = home.join("bin/agent");
        install_copy(Path::new("/bin/true"), &bin).unwrap();
        let file = dir.path().join(UNIT);
        std::fs::write(&file, unit(Kind::System, &bin, &home)).unwrap();
        let verify = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&file)
            .output()
            .expect("systemd-analyze (Debian package systemd)");
        assert!(verify.status.success(), "{verify:?}");
        assert_eq!(
            String::from_utf8_lossy(&verify.stderr).trim(),
            "",
            "systemd-analyze warned"
        );
    }

    #[test]
    fn install_under_a_root_copies_the_agent_for_an_auto_updating_service() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let home = reroot(&root, Path::new(SYSTEM_HOME));
        std::fs::create_dir_all(&home).unwrap();
        auto_update().save(&home.join("config.toml")).unwrap();
        let target = Target {
            platform: super::super::Platform::Linux,
            kind: Kind::System,
            root: Some(root.clone()),
        };
        install(&target, false, Default::default()).unwrap();
        let copy = home.join("bin/agent");
        assert!(copy.is_file(), "the service's own copy");
        let text = std::fs::read_to_string(unit_path(Kind::System, &root).unwrap()).unwrap();
        assert!(
            text.lines()
                .any(|l| l == "ExecStart=/var/lib/mover-agent/bin/agent start"),
            "{text}"
        );
        // Installing again replaces the copy (it may be running: a rename, not a rewrite).
        install(&target, true, Default::default()).unwrap();
        assert!(copy.is_file());
        assert!(!copy.with_extension("new").exists());
    }
}
