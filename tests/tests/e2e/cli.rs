//! The `agent` command line: every command's lines as SPEC §3 writes them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{bin, cli, lines, Agent, Bifrost, TestCa};

/// `agent start ARGS` on a terminal, as a person runs it: util-linux `script` gives it a pty.
fn start_on_terminal(dir: &Path, home: &Path, args: &[&str]) -> Agent {
    use std::os::unix::fs::PermissionsExt;
    let wrapper = dir.join("on-a-terminal");
    // The test's paths hold no spaces or quotes, so "$*" keeps the arguments as they are.
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nexec script -qefc \"$MOVER_TEST_AGENT $*\" /dev/null\n",
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent_bin = bin("agent");
    Agent::start_cmd(
        Command::new(&wrapper),
        home,
        args,
        &[("MOVER_TEST_AGENT", agent_bin.to_str().unwrap())],
    )
}

fn is_key(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[test]
fn help_and_version() {
    let dir = tempfile::tempdir().unwrap();
    for flag in ["-h", "--help", "-?"] {
        let out = cli(dir.path(), &[flag]);
        assert!(out.status.success());
        let l = lines(&out);
        assert!(l[0].starts_with("Mover Agent "), "{l:?}");
        assert!(l.contains(&"Usage: agent [options] [command]".to_owned()));
        assert!(l.contains(&"Options:".to_owned()));
        assert!(l
            .iter()
            .any(|x| x.trim() == "-? | -h | --help  Show help information"));
        assert!(l
            .iter()
            .any(|x| x.trim().starts_with("-v | --version")
                && x.ends_with("Show version information")));
        let commands: Vec<&str> = l
            .iter()
            .skip_while(|x| *x != "Commands:")
            .skip(1)
            .take_while(|x| !x.is_empty())
            .map(|x| x.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(
            commands,
            [
                "connect",
                "disconnect",
                "monitor",
                "service",
                "start",
                "status",
                "stop",
                "update"
            ]
        );
        assert_eq!(
            l.last().unwrap(),
            "Use \"agent [command] --help\" for more information about a command."
        );
    }
    for flag in ["-v", "--version"] {
        let out = cli(dir.path(), &[flag]);
        let l = lines(&out);
        assert_eq!(l[0], "Mover Agent");
        assert!(
            l[1].starts_with(&format!("{} (", env!("CARGO_PKG_VERSION"))) && l[1].ends_with(')'),
            "{l:?}"
        );
    }
    let out = cli(dir.path(), &["start", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--relay",
        "--relay-ca",
        "--relay-fingerprint",
        "--share",
        "--reset-key",
    ] {
        assert!(text.contains(opt), "start --help lacks {opt}: {text}");
    }
}

#[test]
fn commands_say_not_running_without_an_agent() {
    let dir = tempfile::tempdir().unwrap();
    for cmd in ["status", "stop", "connect", "disconnect", "monitor"] {
        let out = cli(dir.path(), &[cmd]);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        assert_eq!(
            lines(&out),
            ["Connecting to Mover Agent", "Mover Agent is not running"],
            "{cmd}"
        );
    }
}

#[test]
fn start_status_disconnect_connect_monitor_stop() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let share = dir.path().join("share");
    std::fs::create_dir_all(share.join("docs")).unwrap();
    std::fs::write(share.join("docs/file.txt"), "hi").unwrap();
    let mut agent = start_on_terminal(
        dir.path(),
        &dir.path().join("home"),
        &[
            "--relay",
            &bifrost.url,
            "--relay-ca",
            ca.ca_file.to_str().unwrap(),
            "--share",
            share.to_str().unwrap(),
        ],
    );
    agent.stdout.wait_line("the initialized line", |l| {
        l.starts_with("Bifrost service initialized")
    });
    let key = agent.key();
    let start = agent.stdout.all();
    assert_eq!(
        start[..4],
        [
            "Mover Agent Starting",
            "Mover Agent Key:",
            &key,
            "Ctrl-C To Stop"
        ]
    );
    assert!(is_key(&key));
    assert!(start.contains(&format!(
        "Bifrost service initialized with connector key: {key}"
    )));

    // A second start in the same home refuses.
    let again = agent.cli(&["start"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(lines(&again)[0].starts_with("Mover Agent is already running"));

    let status = agent.wait_status("waiting for authorization", Duration::from_secs(10));
    assert_eq!(
        status.lines().collect::<Vec<_>>(),
        [
            "Connecting to Mover Agent",
            "Mover Agent Key:",
            &key,
            "Mover Agent Status: online",
            "waiting for authorization"
        ]
    );
    bifrost.authorize(&key, "Finance server");
    agent.wait_status("authorized as Finance server", Duration::from_secs(5));

    // monitor shows the connection, then what Bifrost browses and reads.
    let mut monitor = std::process::Command::new(crate::support::bin("agent"))
        .arg("monitor")
        .env("MOVER_AGENT_HOME", &agent.home)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mon = crate::support::Lines::default();
    mon.follow(monitor.stdout.take().unwrap());
    mon.wait_line("Ready to transfer!", |l| l == "Ready to transfer!");
    let port = bifrost.addr.rsplit(':').next().unwrap();
    assert_eq!(
        mon.all()[..5],
        [
            "Connecting to Mover Agent",
            "Mover Agent Key:",
            &key,
            &format!("Connected to 127.0.0.1 on port {port}."),
            "Ready to transfer!"
        ]
    );
    let connector = bifrost.connectors()[0]["id"].as_str().unwrap().to_owned();
    let docs = share.join("docs");
    let (code, _) = bifrost.api(
        "GET",
        &format!(
            "/api/v1/connectors/{connector}/browse?path={}",
            docs.display()
        ),
        None,
    );
    assert_eq!(code, 200);
    let job = bifrost.create_job(
        &connector,
        &[docs.to_str().unwrap()],
        &dir.path().join("dest"),
        None,
    );
    bifrost.wait_job(&job, Duration::from_secs(20));
    mon.wait_line("a Browse: line", |l| {
        l == format!("Browse: {}", docs.display())
    });
    mon.wait_line("an Upload: line", |l| {
        l == format!("Upload: {}", docs.join("file.txt").display())
    });
    // A longer read (24 MiB at 8 MB/s) shows progress lines while it lasts (plain lines when
    // piped, as here).
    let big = share.join("big");
    std::fs::create_dir_all(&big).unwrap();
    std::fs::write(big.join("big.bin"), crate::support::noise(24 << 20, 3)).unwrap();
    let (status, slow) = bifrost.api(
        "POST",
        "/api/v1/jobs",
        Some(serde_json::json!({"connector": connector, "sources": [big], "destination": {"kind": "folder", "path": dir.path().join("dest")}, "bandwidth_limit": 8_000_000})),
    );
    assert_eq!(status, 201, "{slow}");
    bifrost.wait_job(slow["id"].as_str().unwrap(), Duration::from_secs(30));
    let progress = mon.wait_line("a Progress: line", |l| {
        l.starts_with("Progress: reading 1 file, ")
    });
    assert!(progress.ends_with(" MB/s"), "{progress}");

    let out = agent.cli(&["disconnect"]);
    assert_eq!(
        lines(&out),
        [
            "Connecting to Mover Agent",
            "Sending disconnect command",
            "Mover Agent disconnected."
        ]
    );
    let status = agent.status();
    assert!(
        status.ends_with("Mover Agent Status: offline\ndisconnected by user\n"),
        "{status}"
    );
    bifrost.wait_connector("the connector to be offline", |c| c["state"] == "offline");
    let out = agent.cli(&["connect"]);
    assert_eq!(
        lines(&out),
        [
            "Connecting to Mover Agent",
            "Sending connect command",
            "Mover Agent connected."
        ]
    );
    agent.wait_status(
        "Mover Agent Status: online\nauthorized as Finance server",
        Duration::from_secs(5),
    );

    let out = agent.cli(&["stop"]);
    assert_eq!(
        lines(&out),
        [
            "Connecting to Mover Agent",
            "Sending stop command",
            "Mover Agent Stopping",
            "Mover Agent stopped"
        ]
    );
    assert!(out.status.success());
    assert!(agent.wait_exit().success());
    assert!(agent
        .stdout
        .all()
        .contains(&"Mover Agent Stopping".to_owned()));
    let _ = monitor.kill();
    let _ = monitor.wait();
    assert_eq!(agent.cli(&["status"]).status.code(), Some(1));
}

#[test]
fn status_says_why_when_offline() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port: take a free one and close it.
    let port = crate::support::free_port();
    let relay = format!("https://127.0.0.1:{port}");
    let agent = Agent::start(
        &dir.path().join("home"),
        &["--relay", &relay, "--relay-fingerprint", &"ab".repeat(32)],
    );
    let status = agent.wait_status("cannot reach", Duration::from_secs(10));
    let l: Vec<&str> = status.lines().collect();
    assert_eq!(l[3], "Mover Agent Status: offline");
    assert!(
        l[4].starts_with(&format!("cannot reach 127.0.0.1:{port}: ")),
        "{status}"
    );
    assert_eq!(agent.cli(&["status"]).status.code(), Some(0));

    // The relay settings were saved: a plain start reuses them.
    drop(agent);
    let agent = Agent::start(&dir.path().join("home"), &[]);
    agent.wait_status(
        &format!("cannot reach 127.0.0.1:{port}"),
        Duration::from_secs(10),
    );
}

#[test]
fn proxy_failure_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let proxy = format!("http://127.0.0.1:{port}");
    let agent = Agent::start_env(
        &dir.path().join("home"),
        &[
            "--relay",
            "https://bifrost.invalid:8443",
            "--relay-fingerprint",
            &"ab".repeat(32),
        ],
        &[("HTTPS_PROXY", &proxy)],
    );
    let status = agent.wait_status("proxy 127.0.0.1", Duration::from_secs(10));
    assert!(
        status.contains(&format!(
            "Mover Agent Status: offline\nproxy 127.0.0.1:{port}: "
        )),
        "{status}"
    );
}

#[test]
fn editing_the_config_file_moves_the_agent_to_a_new_bifrost() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let first = Bifrost::spawn(&dir.path().join("one"), "127.0.0.1:0", Some(&ca));
    let second = Bifrost::spawn(&dir.path().join("two"), "127.0.0.1:0", Some(&ca));
    let share = dir.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    let agent = Agent::start_for(&dir.path().join("home"), &first, &ca, &share);
    first.wait_connector("the agent at the first Bifrost", |c| {
        c["state"] == "waiting"
    });
    let config = agent.home.join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&first.url), "{text}");
    // As an admin would: edit the file in place.
    std::fs::write(&config, text.replace(&first.url, &second.url)).unwrap();
    second.wait_connector("the agent at the second Bifrost", |c| {
        c["state"] == "waiting"
    });
    crate::support::wait_for(
        Duration::from_secs(10),
        "the first Bifrost to lose it",
        || first.connectors().is_empty().then_some(()),
    );
    agent.wait_status("Mover Agent Status: online", Duration::from_secs(5));
    let status = agent.status();
    assert!(status.contains("waiting for authorization"), "{status}");
    // A broken edit is refused and the agent keeps its settings.
    std::fs::write(&config, "relay = 'ftp://nowhere'\n").unwrap();
    std::thread::sleep(Duration::from_secs(1));
    assert!(agent.status().contains("Mover Agent Status: online"));
    assert!(agent.logs().contains("invalid"), "the refusal is logged");
}

#[test]
fn service_install_writes_a_unit_systemd_accepts_and_uninstall_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let root_s = root.to_str().unwrap();
    let out = cli(
        dir.path(),
        &[
            "service",
            "install",
            "--system",
            "--root",
            root_s,
            "--relay",
            "https://bifrost.example:8443",
            "--relay-fingerprint",
            &"ab".repeat(32),
            "--share",
            "/srv/shares",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let unit = root.join("etc/systemd/system/mover-agent.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    let agent = crate::support::bin("agent");
    assert!(
        text.contains(&format!("ExecStart={} start", agent.display())),
        "{text}"
    );
    assert!(
        text.contains("AmbientCapabilities=CAP_DAC_READ_SEARCH"),
        "{text}"
    );
    // The service's own config holds the settings.
    let config = std::fs::read_to_string(root.join("var/lib/mover-agent/config.toml")).unwrap();
    assert!(
        config.contains("https://bifrost.example:8443") && config.contains("/srv/shares"),
        "{config}"
    );

    // systemd itself finds nothing wrong with it (no running systemd needed).
    let verify = std::process::Command::new("systemd-analyze")
        .args(["verify"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    assert!(verify.status.success(), "{verify:?}");
    assert_eq!(
        String::from_utf8_lossy(&verify.stderr).trim(),
        "",
        "systemd-analyze warned"
    );

    let status = cli(dir.path(), &["service", "status", "--root", root_s]);
    assert!(status.status.success());
    assert!(
        lines(&status)[0].starts_with("Mover Agent service installed: "),
        "{status:?}"
    );

    let out = cli(
        dir.path(),
        &["service", "uninstall", "--system", "--root", root_s],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(!unit.exists());
    assert!(
        root.join("var/lib/mover-agent/config.toml").exists(),
        "the home is kept"
    );
    let status = cli(dir.path(), &["service", "status", "--root", root_s]);
    assert_eq!(status.status.code(), Some(1));
}

#[test]
fn the_cli_reaches_the_system_service_for_its_administrators_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let run = dir.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = run.join("agent.sock");
    let socket_s = socket.to_str().unwrap().to_owned();
    // As the unit starts it: the control socket outside the home.
    let agent = Agent::start_env(
        &dir.path().join("service-home"),
        &[
            "--relay",
            &bifrost.url,
            "--relay-ca",
            ca.ca_file.to_str().unwrap(),
        ],
        &[("MOVER_AGENT_CONTROL", &socket_s)],
    );
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "the service's socket is for its group");
    assert!(!dir.path().join("service-home/agent.sock").exists());

    // An administrator with no agent of their own reaches the service.
    let admin_home = dir.path().join("admin-home");
    let out = std::process::Command::new(crate::support::bin("agent"))
        .arg("status")
        .env("MOVER_AGENT_HOME", &admin_home)
        .env("MOVER_AGENT_SYSTEM_CONTROL", &socket_s)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(lines(&out).contains(&agent.key()), "{out:?}");

    // Anybody else is told why not.
    let agent_bin = dir.path().join("agent-cli");
    std::fs::copy(crate::support::bin("agent"), &agent_bin).unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(&agent_bin)
        .arg("status")
        .env("MOVER_AGENT_HOME", dir.path().join("nobody-home"))
        .env("MOVER_AGENT_SYSTEM_CONTROL", &socket_s)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("members of the group `mover-agent`"), "{err}");
}

/// Run as a service manager runs it (standard output to a pipe, which a journal reads; this
/// machine's PID 1 is not systemd, so a pipe is the service case here): the output shows only
/// the key's first 4 characters and says how to see it, and no log file nor any process's
/// command line holds the key.
#[test]
fn a_service_style_start_never_shows_the_full_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let share = dir.path().join("share");
    std::fs::create_dir_all(&share).unwrap();
    let mut agent = Agent::start_for(&dir.path().join("home"), &bifrost, &ca, &share);
    let key = agent.key();
    assert!(is_key(&key));
    agent.stdout.wait_line("the initialized line", |l| {
        l.starts_with("Bifrost service initialized")
    });
    // Connected and authorized: everything that could print or log the key has run.
    bifrost.authorize(&key, "svc");
    agent.wait_status("authorized as svc", Duration::from_secs(10));
    let out = agent.stdout.all();
    let text = out.join("\n");
    assert!(!text.contains(&key), "the output holds the key:\n{text}");
    assert_eq!(out[..2], ["Mover Agent Starting", "Mover Agent Key:"]);
    assert!(out[2].starts_with(&format!("{}… ", &key[..4])), "{text}");
    assert!(out[2].contains("agent status"), "{text}");
    assert_eq!(out[3], "Ctrl-C To Stop");
    // `agent status` is where the full key is shown.
    assert!(agent.status().contains(&key));
    // No process's command line carries it.
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline);
            assert!(
                !cmdline.contains(&key),
                "{}: {cmdline}",
                entry.path().display()
            );
        }
    }
    // The logs (read by Agent's drop as well) are private and hold no key.
    use std::os::unix::fs::PermissionsExt;
    let logs = agent.home.join("logs");
    let mode = std::fs::metadata(&logs).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "the log folder");
    let socket = agent.home.join("agent.sock");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the control socket");
    assert!(!agent.logs().contains(&key));
    agent.terminate();
    agent.wait_exit();
    assert!(!agent.stdout.all().join("\n").contains(&key));
}
