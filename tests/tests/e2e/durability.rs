//! Durability: every copied file is fsynced before it is renamed into place (seen with strace on
//! the real Bifrost process).

use std::time::Duration;

use crate::support::{noise, Agent, Bifrost, TestCa};

#[test]
fn every_file_is_fsynced_before_its_rename() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let trace = dir.path().join("strace.log");
    let bifrost = Bifrost::start_traced(
        dir.path(),
        &ca,
        "fsync,fdatasync,rename,renameat,renameat2",
        &trace,
    );
    let share = dir.path().join("share");
    let src = share.join("docs");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..20usize {
        let sub = if i % 2 == 0 { "" } else { "sub/" };
        std::fs::write(
            src.join(format!("{sub}f{i}.bin")),
            noise(1000 + i * 7919, i as u64),
        )
        .unwrap();
    }
    let agent = Agent::start_for(&dir.path().join("home"), &bifrost, &ca, &share);
    let connector = bifrost.authorize(&agent.key(), "fs1")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dest = dir.path().join("dest");
    let job = bifrost.create_job(&connector, &[src.to_str().unwrap()], &dest, None);
    let done = bifrost.wait_job(&job, Duration::from_secs(60));
    assert_eq!(done["files_done"], 20, "{done}");

    let log = std::fs::read_to_string(&trace).unwrap();
    // Threads interleave: a call may print as "<unfinished ...>" and end later as
    // "<... fsync resumed>) = 0" on its thread's line; a file counts as synced once that ends.
    let mut synced = std::collections::HashSet::new();
    let mut pending: std::collections::HashMap<String, String> = Default::default();
    let mut renamed = 0;
    for line in log.lines() {
        // "PID  call…": strace pads the pid column.
        let (pid, call) = line
            .split_once(' ')
            .map(|(p, c)| (p, c.trim_start()))
            .unwrap_or(("", line));
        if call.starts_with("fsync(") {
            // fsync(12</tmp/…/dest/docs/.f0.bin.mover-part>) = 0
            let path = call
                .split('<')
                .nth(1)
                .and_then(|s| s.split('>').next())
                .unwrap_or_default()
                .to_owned();
            // Renames name the file through its open folder (/proc/self/fd/N/NAME), so files
            // are matched by name; every name in this test is its own.
            let path = path.rsplit('/').next().unwrap_or_default().to_owned();
            if call.ends_with("<unfinished ...>") {
                pending.insert(pid.to_owned(), path);
            } else if call.ends_with("= 0") {
                synced.insert(path);
            }
        } else if call.starts_with("<... fsync resumed>") && call.ends_with("= 0") {
            if let Some(path) = pending.remove(pid) {
                synced.insert(path);
            }
        } else if call.starts_with("rename") && call.contains(".mover-part") {
            let part = call
                .split('"')
                .find(|s| s.ends_with(".mover-part"))
                .and_then(|s| s.rsplit('/').next())
                .unwrap_or_else(|| panic!("no partial file name in {line}"));
            assert!(
                synced.contains(part),
                "{part} was renamed before its fsync had returned:\n{log}"
            );
            renamed += 1;
        }
    }
    assert_eq!(renamed, 20, "{log}");
}
