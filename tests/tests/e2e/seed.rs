//! The original agent's own invocations: a bare `./agent` starts the agent exactly as
//! `agent start` does and, on a terminal, prints the line its steps say to copy the key from;
//! command names are matched regardless of case (`./agent Stop`, `./agent Status`).

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{authorized_agent, bin, cli, wait_for, Bifrost, Lines, TestCa};

const KEY_LINE: &str = "Bifrost service initialized with connector key: ";

#[test]
fn a_bare_agent_on_a_terminal_starts_prints_the_key_line_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let (home, share) = (dir.path().join("home"), dir.path().join("share"));
    std::fs::create_dir_all(&share).unwrap();
    // The first start keeps the relay settings, as an installer's would; it is authorized.
    let (mut first, _) = authorized_agent(dir.path(), &bifrost, &ca, &share);
    let out = first.cli(&["Stop"]);
    assert!(out.status.success(), "{out:?}");
    assert!(first.wait_exit_within(Duration::from_secs(10)).success());

    // `script` gives the bare `agent` a terminal, as a person's shell or a double-click does.
    let agent = bin("agent");
    let mut child = Command::new("script")
        .args(["-qfec", agent.to_str().unwrap(), "/dev/null"])
        .env("MOVER_AGENT_HOME", &home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::default();
    lines.follow(child.stdout.take().unwrap());
    lines.follow(child.stderr.take().unwrap());
    let line = lines.wait_line("the key line", |l| l.trim().starts_with(KEY_LINE));
    let shown = line.trim().strip_prefix(KEY_LINE).unwrap().to_owned();
    let key = std::fs::read_to_string(home.join("connector.key")).unwrap();
    assert_eq!(shown, key.trim(), "the full key, on a terminal");
    bifrost.wait_connector("the bare agent to reach Bifrost", |c| {
        c["state"] == "online"
    });

    let status = cli(&home, &["STATUS"]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(status.status.success(), "{text}");
    assert!(text.contains(key.trim()), "{text}");
    let out = cli(&home, &["Stop"]);
    assert!(out.status.success(), "{out:?}");
    wait_for(Duration::from_secs(10), "the bare agent to stop", || {
        child.try_wait().unwrap()
    });
    assert!(lines.all().iter().any(|l| l.trim() == "Ctrl-C To Stop"));
}
