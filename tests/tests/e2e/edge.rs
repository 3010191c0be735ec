//! Files at the edges: empty, sparse and over 4 GiB, paths longer than 260 and 1,024
//! characters, sockets, unreadable files (as a real unprivileged agent), and a file that keeps
//! changing while it is read.

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{noise, wait_for, Agent, Bifrost, TestCa, World};

fn line<'a>(report: &'a [Value], name: &str) -> &'a Value {
    report
        .iter()
        .find(|f| f["source"].as_str().unwrap().ends_with(name))
        .unwrap_or_else(|| panic!("{name} not in {report:#?}"))
}

/// A folder path under `root` whose full length is at least `len` characters.
fn deep(root: &Path, len: usize, tag: char) -> std::path::PathBuf {
    let mut p = root.to_path_buf();
    let mut i = 0;
    while p.as_os_str().len() < len {
        p = p.join(format!("{i:02}-{}", tag.to_string().repeat(120)));
        i += 1;
    }
    p
}

#[test]
fn empty_sparse_huge_long_path_and_socket_files() {
    let w = World::new();
    let src = w.share.join("edge");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("empty.bin"), b"").unwrap();
    // 4 GiB + 1 byte, nearly all hole, with data at both ends and across the 4 GiB line.
    let big_len: u64 = (4 << 30) + 1;
    {
        let mut f = std::fs::File::create(src.join("sparse.img")).unwrap();
        f.set_len(big_len).unwrap();
        f.write_all(b"head").unwrap();
        f.seek(SeekFrom::Start((4 << 30) - 2)).unwrap();
        f.write_all(b"xyz").unwrap();
    }
    let long260 = deep(&src, 300, 'a');
    let long1024 = deep(&src, 1100, 'b');
    for (dir, data) in [(&long260, noise(5000, 1)), (&long1024, noise(7000, 2))] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("deep.txt"), data).unwrap();
    }
    let _socket = std::os::unix::net::UnixListener::bind(src.join("agent.sock")).unwrap();

    let dest = w.dir.path().join("dest");
    let job = w
        .bifrost
        .create_job(&w.connector, &[src.to_str().unwrap()], &dest, None);
    let done = w.bifrost.wait_job(&job, Duration::from_secs(300));
    let report = w.bifrost.files(&job);
    assert_eq!(done["files_failed"], 0, "{report:#?}");

    let empty = line(&report, "empty.bin");
    assert_eq!(empty["status"], "copied");
    assert_eq!(empty["blake3"], blake3::hash(b"").to_hex().as_str());
    assert_eq!(
        std::fs::metadata(dest.join("edge/empty.bin"))
            .unwrap()
            .len(),
        0
    );

    let sparse = line(&report, "sparse.img");
    assert_eq!(sparse["status"], "copied", "{sparse}");
    assert_eq!(sparse["size"], big_len);
    let copy = dest.join("edge/sparse.img");
    let meta = std::fs::metadata(&copy).unwrap();
    assert_eq!(meta.len(), big_len);
    assert!(
        meta.blocks() * 512 < 64 << 20,
        "the copy of a sparse file takes {} bytes on disk",
        meta.blocks() * 512
    );
    let mut f = std::fs::File::open(&copy).unwrap();
    let mut buf = [0u8; 4];
    std::io::Read::read_exact(&mut f, &mut buf).unwrap();
    assert_eq!(&buf, b"head");
    f.seek(SeekFrom::Start((4 << 30) - 2)).unwrap();
    let mut tail = [0u8; 3];
    std::io::Read::read_exact(&mut f, &mut tail).unwrap();
    assert_eq!(&tail, b"xyz");

    for (dir, seed, n) in [(&long260, 1, 5000), (&long1024, 2, 7000)] {
        let rel = dir.strip_prefix(&w.share).unwrap().join("deep.txt");
        assert!(rel.as_os_str().len() > if seed == 1 { 260 } else { 1024 });
        assert_eq!(std::fs::read(dest.join(&rel)).unwrap(), noise(n, seed));
    }

    let socket = line(&report, "agent.sock");
    assert_eq!(socket["status"], "skipped", "{socket}");
    assert!(
        socket["reason"].as_str().unwrap().contains("socket"),
        "{socket}"
    );
    assert!(!dest.join("edge/agent.sock").exists());
}

#[test]
fn unreadable_files_fail_alone_for_an_unprivileged_agent() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let share = dir.path().join("share");
    let src = share.join("perm");
    std::fs::create_dir_all(src.join("closed")).unwrap();
    std::fs::write(src.join("open.txt"), "readable").unwrap();
    std::fs::write(src.join("secret.txt"), "not for the agent").unwrap();
    std::fs::write(src.join("closed/inside.txt"), "hidden").unwrap();
    std::fs::set_permissions(
        src.join("secret.txt"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    std::fs::set_permissions(src.join("closed"), std::fs::Permissions::from_mode(0o000)).unwrap();
    let ca_file = ca.ca_file.to_str().unwrap().to_owned();
    let agent = Agent::start_as_nobody(
        dir.path(),
        &dir.path().join("home"),
        &[
            "--relay",
            &bifrost.url,
            "--relay-ca",
            &ca_file,
            "--share",
            share.to_str().unwrap(),
        ],
    );
    let connector = bifrost.authorize(&agent.key(), "fs1")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    agent.wait_status("authorized as fs1", Duration::from_secs(10));
    let dest = dir.path().join("dest");
    let job = bifrost.create_job(&connector, &[src.to_str().unwrap()], &dest, None);
    let done = bifrost.wait_job(&job, Duration::from_secs(60));
    assert_eq!(done["state"], "completed_with_errors", "{done}");
    let report = bifrost.files(&job);
    assert_eq!(line(&report, "open.txt")["status"], "copied");
    assert_eq!(
        std::fs::read_to_string(dest.join("perm/open.txt")).unwrap(),
        "readable"
    );
    let secret = line(&report, "secret.txt");
    assert_eq!(secret["status"], "failed", "{secret}");
    assert!(
        secret["reason"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("permission denied"),
        "{secret}"
    );
    assert!(!dest.join("perm/secret.txt").exists());
    let closed = line(&report, "closed");
    assert_eq!(closed["status"], "failed", "{report:#?}");
    assert!(
        closed["reason"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("permission denied"),
        "{closed}"
    );

    // A source the agent may not list fails the job, also while the files the scan found
    // before it are being copied: the copying stops and the job ends.
    let dest = dir.path().join("dest2");
    let job = bifrost.create_job(
        &connector,
        &[src.to_str().unwrap(), src.join("closed").to_str().unwrap()],
        &dest,
        None,
    );
    let done = bifrost.wait_job(&job, Duration::from_secs(60));
    assert_eq!(done["state"], "failed", "{done}");
    assert!(
        done["reason"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("permission denied"),
        "{done}"
    );
}

#[test]
fn a_file_changing_while_read_is_never_stored_mixed() {
    let w = World::new();
    let src = w.share.join("live");
    std::fs::create_dir_all(&src).unwrap();
    let path = src.join("growing.log");
    std::fs::write(&path, noise(16 << 20, 5)).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let appender = {
        let (stop, path) = (stop.clone(), path.clone());
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                f.write_all(&noise(64 << 10, 100 + n)).unwrap();
                n += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let dest = w.dir.path().join("dest");
    let (status, job) = w.bifrost.api(
        "POST",
        "/api/v1/jobs",
        Some(json!({"connector": w.connector, "sources": [src], "destination": {"kind": "folder", "path": dest}, "bandwidth_limit": 8 << 20})),
    );
    assert_eq!(status, 201, "{job}");
    let done = w
        .bifrost
        .wait_job(job["id"].as_str().unwrap(), Duration::from_secs(120));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    appender.join().unwrap();
    let report = w.bifrost.files(job["id"].as_str().unwrap());
    let file = line(&report, "growing.log");
    let copy = dest.join("live/growing.log");
    match file["status"].as_str() {
        Some("failed") => {
            assert_eq!(file["reason"], "changed during copy", "{file}");
            assert!(!copy.exists(), "a file that changed during copy was stored");
            // Read once, then again three times.
            let reads = wait_for(Duration::from_secs(5), "the agent's log", || {
                let n = w
                    .agent
                    .logs()
                    .lines()
                    .filter(|l| l.contains("growing.log") && l.contains(" read"))
                    .count();
                (n >= 4).then_some(n)
            });
            assert_eq!(reads, 4);
            assert_eq!(done["state"], "completed_with_errors");
        }
        Some("copied") => {
            // Only if a read slipped between two appends: then it is whole and consistent.
            let data = std::fs::read(&copy).unwrap();
            assert_eq!(file["blake3"], blake3::hash(&data).to_hex().as_str());
            assert_eq!(&std::fs::read(&path).unwrap()[..data.len()], &data[..]);
        }
        other => panic!("unexpected status {other:?}: {file}"),
    }
}
