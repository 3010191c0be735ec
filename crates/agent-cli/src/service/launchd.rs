//! `agent service` on macOS: a launchd job, a LaunchDaemon for the machine or a LaunchAgent that
//! starts at the user's login.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context};

use super::{Kind, Target};

/// The job's label, and the property list's name.
pub const LABEL: &str = "com.mover.agent";
/// The system service's home: key, config and logs (macOS has no /var/lib; daemons keep their
/// state in /Library/Application Support).
pub const SYSTEM_HOME: &str = "/Library/Application Support/Mover/Agent";
/// The system service's control socket, outside its home (0700, root's) so that the CLI finds
/// it at a fixed place; the agent creates the folder, as /var/run is emptied at boot.
pub const SYSTEM_CONTROL: &str = mover_agent::home::SYSTEM_CONTROL_MACOS;
/// How long launchd waits between SIGTERM and SIGKILL: reads in flight get up to 30 s to finish.
const EXIT_TIMEOUT_S: u64 = 40;

/// The job's property list.
///
/// The system job runs as root. macOS has no equivalent of Linux's `CAP_DAC_READ_SEARCH` (read
/// any file, write nothing), so a dedicated `_moveragent` user could read only what every share
/// grants it through ACLs, one share at a time; root reads what the shares' permissions allow.
/// Even root cannot read the folders macOS guards with privacy controls (users' Desktop,
/// Documents and Downloads, removable and network volumes) until an administrator grants the
/// agent's binary Full Disk Access (System Settings > Privacy & Security > Full Disk Access);
/// `install` says so. The agent itself never writes outside its home: it only reads shares.
pub fn property_list(kind: Kind, exe: &Path, home: &Path) -> plist::Value {
    use plist::{Dictionary, Value};
    let text = |p: &Path| Value::String(p.to_string_lossy().into_owned());
    let mut env = Dictionary::new();
    env.insert(mover_agent::home::HOME_ENV.into(), text(home));
    if kind == Kind::System {
        env.insert(
            mover_agent::home::CONTROL_ENV.into(),
            Value::String(SYSTEM_CONTROL.into()),
        );
    }
    let mut keep_alive = Dictionary::new();
    // Restarted when it fails, not after `agent stop`.
    keep_alive.insert("SuccessfulExit".into(), Value::Boolean(false));

    let mut job = Dictionary::new();
    job.insert("Label".into(), Value::String(LABEL.into()));
    job.insert(
        "ProgramArguments".into(),
        Value::Array(vec![text(exe), Value::String("start".into())]),
    );
    job.insert("EnvironmentVariables".into(), Value::Dictionary(env));
    job.insert("RunAtLoad".into(), Value::Boolean(true));
    job.insert("KeepAlive".into(), Value::Dictionary(keep_alive));
    job.insert("ExitTimeOut".into(), Value::Integer(EXIT_TIMEOUT_S.into()));
    // Standard output is `agent start`'s banner, which shows the full key: log files never
    // hold it (the key is read with `agent status`). Standard error catches what fails before
    // the agent's own log is open, such as a bad config file.
    job.insert("StandardOutPath".into(), Value::String("/dev/null".into()));
    job.insert(
        "StandardErrorPath".into(),
        text(&home.join("logs").join("service-errors.log")),
    );
    if kind == Kind::System {
        job.insert("UserName".into(), Value::String("root".into()));
    }
    Value::Dictionary(job)
}

/// The property list as XML, as launchd's own tools write it.
pub fn property_list_xml(kind: Kind, exe: &Path, home: &Path) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    property_list(kind, exe, home)
        .to_writer_xml(&mut out)
        .context("cannot write the property list")?;
    Ok(out)
}

/// Where the property list goes (before `--root`).
fn plist_path(kind: Kind) -> anyhow::Result<PathBuf> {
    let name = format!("{LABEL}.plist");
    Ok(match kind {
        Kind::System => Path::new("/Library/LaunchDaemons").join(name),
        Kind::User => {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .context("cannot find this user's home folder (HOME is not set)")?;
            PathBuf::from(home).join("Library/LaunchAgents").join(name)
        }
    })
}

/// The service's home (before `--root`).
fn home(kind: Kind) -> anyhow::Result<PathBuf> {
    Ok(match kind {
        Kind::System => PathBuf::from(SYSTEM_HOME),
        Kind::User => mover_agent::AgentHome::from_env()
            .context("cannot find the agent's home folder")?
            .dir()
            .to_path_buf(),
    })
}

/// launchd's domain for the job: the system's, or this user's login session.
fn domain(kind: Kind) -> anyhow::Result<String> {
    Ok(match kind {
        Kind::System => "system".into(),
        Kind::User => {
            // `id` rather than getuid(): this crate has no unsafe code.
            let out = Command::new("id")
                .arg("-u")
                .output()
                .context("cannot run id -u")?;
            let uid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !out.status.success() || uid.is_empty() {
                bail!("cannot find this user's id (id -u failed)");
            }
            format!("gui/{uid}")
        }
    })
}

/// Runs `launchctl ARGS`; `Ok(Err(message))` when it ran and refused.
fn launchctl(args: &[&str]) -> anyhow::Result<Result<String, String>> {
    let out = Command::new("launchctl")
        .args(args)
        .output()
        .context("cannot run launchctl")?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_owned();
    Ok(if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(format!("{} {}", text(&out.stdout), text(&out.stderr))
            .trim()
            .to_owned())
    })
}

/// Writes the property list and loads the job.
pub fn install(
    target: &Target,
    no_start: bool,
    settings: crate::commands::SettingsArgs,
) -> anyhow::Result<ExitCode> {
    let kind = target.kind;
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let home = home(kind)?;
    let home_dir = target.reroot(&home);
    super::save_settings(settings, &home_dir)?;
    // launchd opens the error log before the agent runs, and does not create its folder.
    let logs = home_dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;

    let path = target.reroot(&plist_path(kind)?);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let sudo = if kind == Kind::System {
        " (the system service is installed with sudo)"
    } else {
        ""
    };
    std::fs::write(&path, property_list_xml(kind, &exe, &home)?)
        .with_context(|| format!("cannot write {}{sudo}", path.display()))?;
    // launchd refuses a property list that others may write.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    }
    println!("Wrote {}", path.display());
    if !target.live() {
        println!(
            "Not loaded: --root was given (load it on the target with `launchctl bootstrap {} {}`).",
            if kind == Kind::System { "system" } else { "gui/$(id -u)" },
            plist_path(kind)?.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let domain = domain(kind)?;
    let service = format!("{domain}/{LABEL}");
    // A job loaded by an earlier install must go first: bootstrap refuses a loaded label.
    let _ = launchctl(&["bootout", &service])?;
    if let Err(why) = launchctl(&["enable", &service])? {
        bail!("launchctl could not enable {service}: {why}");
    }
    if !no_start {
        let plist = path.to_string_lossy();
        if let Err(why) = launchctl(&["bootstrap", &domain, &plist])? {
            bail!("launchctl could not load {plist}: {why}");
        }
    }
    println!(
        "Mover Agent service installed{}; its key: `{}agent status`, or {}",
        if no_start {
            " (it starts at the next boot or login)"
        } else {
            " and started"
        },
        if kind == Kind::System { "sudo " } else { "" },
        home.join("connector.key").display()
    );
    if kind == Kind::System {
        println!(
            "To let it read folders macOS guards (users' Desktop, Documents and Downloads, removable and network volumes), give {} Full Disk Access in System Settings > Privacy & Security > Full Disk Access.",
            exe.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Unloads the job (launchd stops it, waiting up to `ExitTimeOut`) and removes its file.
pub fn uninstall(target: &Target) -> anyhow::Result<ExitCode> {
    let path = target.reroot(&plist_path(target.kind)?);
    if !path.exists() {
        println!(
            "Mover Agent service is not installed ({} does not exist)",
            path.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    if target.live() {
        let service = format!("{}/{LABEL}", domain(target.kind)?);
        // Not loaded (already booted out, or never started) is fine: the file still goes.
        if let Err(why) = launchctl(&["bootout", &service])? {
            println!("launchctl bootout {service}: {why}");
        }
    }
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    println!(
        "Removed {}; the agent's home (key, config, logs) is kept",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Reports whether the job is installed, loaded and running.
pub fn status(target: &Target) -> anyhow::Result<ExitCode> {
    let path = target.reroot(&plist_path(target.kind)?);
    if !path.exists() {
        println!("Mover Agent service is not installed");
        return Ok(ExitCode::FAILURE);
    }
    println!("Mover Agent service installed: {}", path.display());
    if target.live() {
        let service = format!("{}/{LABEL}", domain(target.kind)?);
        match launchctl(&["print", &service])? {
            Ok(text) => {
                println!("loaded: yes");
                for (key, value) in summary(&text) {
                    println!("{key}: {value}");
                }
            }
            Err(_) => println!("loaded: no"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The job's state, pid and last exit code from `launchctl print`, whose output is meant for
/// people: only the job's own (top-level, one tab deep) lines are read, not its sections'.
fn summary(print: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for wanted in ["state", "pid", "last exit code"] {
        let value = print.lines().find_map(|line| {
            let line = line.strip_prefix('\t').filter(|l| !l.starts_with('\t'))?;
            let (key, value) = line.split_once(" = ")?;
            (key == wanted).then(|| value.trim().to_owned())
        });
        if let Some(value) = value {
            found.push((wanted.to_owned(), value));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use plist::Value;

    fn round_trip(kind: Kind, exe: &str, home: &str) -> plist::Dictionary {
        let xml = property_list_xml(kind, Path::new(exe), Path::new(home)).unwrap();
        assert!(xml.starts_with(b"<?xml"), "an XML property list");
        match plist::from_bytes::<Value>(&xml).unwrap() {
            Value::Dictionary(d) => d,
            other => panic!("not a dictionary: {other:?}"),
        }
    }

    fn string<'a>(d: &'a plist::Dictionary, key: &str) -> &'a str {
        d.get(key)
            .and_then(Value::as_string)
            .unwrap_or_else(|| panic!("{key} missing in {d:?}"))
    }

    #[test]
    fn the_daemon_runs_start_as_root_with_the_system_home_and_socket() {
        let job = round_trip(Kind::System, "/usr/local/bin/agent", SYSTEM_HOME);
        assert_eq!(string(&job, "Label"), "com.mover.agent");
        assert_eq!(string(&job, "UserName"), "root");
        let args: Vec<&str> = job["ProgramArguments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_string().unwrap())
            .collect();
        assert_eq!(args, ["/usr/local/bin/agent", "start"]);
        let env = job["EnvironmentVariables"].as_dictionary().unwrap();
        assert_eq!(string(env, "MOVER_AGENT_HOME"), SYSTEM_HOME);
        assert_eq!(
            string(env, "MOVER_AGENT_CONTROL"),
            "/var/run/mover-agent/agent.sock"
        );
        assert_eq!(job["RunAtLoad"].as_boolean(), Some(true));
        let keep_alive = job["KeepAlive"].as_dictionary().unwrap();
        assert_eq!(keep_alive["SuccessfulExit"].as_boolean(), Some(false));
        assert_eq!(job["ExitTimeOut"].as_unsigned_integer(), Some(40));
        assert_eq!(
            string(&job, "StandardErrorPath"),
            "/Library/Application Support/Mover/Agent/logs/service-errors.log"
        );
        assert_eq!(string(&job, "StandardOutPath"), "/dev/null");
    }

    #[test]
    fn the_user_agent_runs_as_the_user_with_its_home_and_no_system_socket() {
        let home = "/Users/ann/Library/Application Support/com.Mover.Mover-Agent";
        let job = round_trip(Kind::User, "/Applications/agent", home);
        assert!(job.get("UserName").is_none(), "{job:?}");
        let env = job["EnvironmentVariables"].as_dictionary().unwrap();
        assert_eq!(string(env, "MOVER_AGENT_HOME"), home);
        assert!(env.get("MOVER_AGENT_CONTROL").is_none(), "{env:?}");
        assert_eq!(job["RunAtLoad"].as_boolean(), Some(true));
        assert_eq!(job["ExitTimeOut"].as_unsigned_integer(), Some(40));
        assert_eq!(
            string(&job, "StandardErrorPath"),
            format!("{home}/logs/service-errors.log")
        );
    }

    #[test]
    fn launchctl_print_summary_reads_only_the_jobs_own_lines() {
        let text = "system/com.mover.agent = {\n\tactive count = 1\n\tpath = /Library/LaunchDaemons/com.mover.agent.plist\n\tendpoints = {\n\t\tstate = active\n\t}\n\tstate = running\n\n\tprogram = /usr/local/bin/agent\n\tpid = 4242\n\tlast exit code = (never exited)\n}\n";
        let s = summary(text);
        assert_eq!(
            s,
            [
                ("state".to_owned(), "running".to_owned()),
                ("pid".to_owned(), "4242".to_owned()),
                ("last exit code".to_owned(), "(never exited)".to_owned()),
            ]
        );
        assert!(summary("garbage").is_empty());
    }

    #[test]
    fn install_status_and_uninstall_under_a_root() {
        let dir = tempfile::tempdir().unwrap();
        let target = Target {
            platform: super::super::Platform::Macos,
            kind: Kind::System,
            root: Some(dir.path().to_path_buf()),
        };
        assert_eq!(status(&target).unwrap(), ExitCode::FAILURE);
        assert_eq!(
            install(&target, false, Default::default()).unwrap(),
            ExitCode::SUCCESS
        );
        let path = dir
            .path()
            .join("Library/LaunchDaemons/com.mover.agent.plist");
        let job: Value = plist::from_file(&path).unwrap();
        let exe = std::env::current_exe().unwrap();
        assert_eq!(
            job.as_dictionary().unwrap()["ProgramArguments"]
                .as_array()
                .unwrap()[0]
                .as_string(),
            exe.to_str()
        );
        let home = dir.path().join("Library/Application Support/Mover/Agent");
        assert!(home.join("config.toml").is_file(), "settings saved");
        assert!(home.join("logs").is_dir(), "launchd's log folder exists");
        assert_eq!(status(&target).unwrap(), ExitCode::SUCCESS);
        assert_eq!(uninstall(&target).unwrap(), ExitCode::SUCCESS);
        assert!(!path.exists());
        assert!(home.join("config.toml").is_file(), "the home is kept");
        assert_eq!(uninstall(&target).unwrap(), ExitCode::FAILURE);
    }
}
