//! The unit the .deb installs (`debian/mover-agent.service`) is the one `agent service install
//! --system` writes, for the binary at /usr/bin/mover-agent: the two cannot drift apart.
#![cfg(target_os = "linux")]

use std::path::PathBuf;
use std::process::Command;

/// The packaged unit, without its leading `#` comment lines.
fn packaged() -> String {
    include_str!("../debian/mover-agent.service")
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn packaged_unit_is_the_one_service_install_writes() {
    let root = std::env::temp_dir().join(format!("mover-packaged-unit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_agent"));
    let out = Command::new(&exe)
        .args(["service", "install", "--system", "--root"])
        .arg(&root)
        .env("MOVER_AGENT_HOME", root.join("home"))
        .output()
        .expect("run agent service install");
    assert!(
        out.status.success(),
        "agent service install --system --root failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read_to_string(root.join("etc/systemd/system/mover-agent.service"))
        .expect("read the unit agent service install wrote");
    let _ = std::fs::remove_dir_all(&root);

    // The unit names the binary that wrote it; the package installs it as /usr/bin/mover-agent.
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    let written = written.replace(&*exe.to_string_lossy(), "/usr/bin/mover-agent");
    assert!(
        written.contains("ExecStart=/usr/bin/mover-agent start"),
        "the written unit does not start this binary:\n{written}"
    );
    assert_eq!(
        packaged(),
        written,
        "crates/agent-cli/debian/mover-agent.service differs from what `agent service install \
         --system` writes; copy the latter (with ExecStart=/usr/bin/mover-agent start) into it"
    );
}
