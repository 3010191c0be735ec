//! Browse and copy: the destination matches the source byte for byte and in modification time.

use std::path::Path;
use std::time::Duration;

use crate::support::{form_encode, noise, World};

/// Every file under `root`, relative, sorted.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            if ft.is_dir() {
                out.push(format!("{rel}/"));
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

fn mtime(p: &Path) -> filetime::FileTime {
    filetime::FileTime::from_last_modification_time(&std::fs::metadata(p).unwrap())
}

#[test]
fn browse_then_copy_a_tree_exactly() {
    let w = World::new();
    let root = w.share.join("Finance");
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("empty.txt", vec![]),
        ("big.bin", noise(5 * 1024 * 1024, 7)),
        ("Q1 report.txt", b"quarter one".to_vec()),
        (
            "Übersicht/Jahresabschluß 2026.txt",
            "grüße".as_bytes().to_vec(),
        ),
        ("a/b/c/deep.txt", b"deep".to_vec()),
        ("日本語/ファイル.txt", "こんにちは".as_bytes().to_vec()),
    ];
    for (i, (rel, data)) in files.iter().enumerate() {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        // Distinct times with nanoseconds, so a lost mtime shows.
        filetime::set_file_mtime(
            &p,
            filetime::FileTime::from_unix_time(1_600_000_000 + i as i64 * 1000, 123_456_789),
        )
        .unwrap();
    }
    std::fs::create_dir_all(root.join("empty folder")).unwrap();

    // Browse into a nested folder.
    let (status, page) = w.browse(&w.src("Finance/a/b"));
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["entries"][0]["name"], "c");
    assert_eq!(page["entries"][0]["kind"], "dir");
    let (_, page) = w.browse(&w.src("Finance/Übersicht"));
    let entry = &page["entries"][0];
    assert_eq!(entry["name"], "Jahresabschluß 2026.txt");
    assert_eq!(entry["kind"], "file");
    assert_eq!(entry["size"], "grüße".len());
    assert!(entry["modified"]
        .as_str()
        .unwrap()
        .starts_with("2020-09-13T"));
    let (status, stat) = w.bifrost.api(
        "GET",
        &format!(
            "/api/v1/connectors/{}/stat?path={}",
            w.connector,
            form_encode(&w.src("Finance/big.bin"))
        ),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(stat["size"], 5 * 1024 * 1024);

    let dest = w.dir.path().join("dest");
    let job = w
        .bifrost
        .create_job(&w.connector, &[&w.src("Finance")], &dest, None);
    let done = w.bifrost.wait_job(&job, Duration::from_secs(60));
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["files_total"], 7);
    assert_eq!(done["files_done"], 7);
    assert_eq!(done["bytes_done"], done["bytes_total"]);

    let copied = dest.join("Finance");
    assert_eq!(tree(&copied), tree(&root));
    for (rel, data) in &files {
        let got = std::fs::read(copied.join(rel)).unwrap();
        assert!(got == *data, "{rel} differs");
        assert_eq!(
            mtime(&copied.join(rel)),
            mtime(&root.join(rel)),
            "{rel} modification time"
        );
    }
    assert!(
        !tree(&dest).iter().any(|p| p.contains(".mover-part")),
        "no temp files left"
    );

    let report = w.bifrost.files(&job);
    assert_eq!(report.len(), 7);
    for (rel, data) in &files {
        let line = report
            .iter()
            .find(|f| f["destination"] == copied.join(rel).to_str().unwrap())
            .unwrap_or_else(|| panic!("{rel} not in report"));
        assert_eq!(line["status"], "copied");
        assert_eq!(line["blake3"], blake3::hash(data).to_hex().as_str());
    }

    // A re-run copies nothing new; after one change it copies exactly that file.
    let (status, rerun) = w
        .bifrost
        .api("POST", &format!("/api/v1/jobs/{job}/rerun"), None);
    assert_eq!(status, 201, "{rerun}");
    let rerun = w
        .bifrost
        .wait_job(rerun["id"].as_str().unwrap(), Duration::from_secs(30));
    assert_eq!(
        (
            rerun["files_done"].as_u64(),
            rerun["files_skipped"].as_u64()
        ),
        (Some(0), Some(7)),
        "{rerun}"
    );
    std::fs::write(root.join("Q1 report.txt"), b"quarter one, revised").unwrap();
    let (_, rerun2) = w
        .bifrost
        .api("POST", &format!("/api/v1/jobs/{job}/rerun"), None);
    let rerun2 = w
        .bifrost
        .wait_job(rerun2["id"].as_str().unwrap(), Duration::from_secs(30));
    // Exactly the one changed file.
    assert_eq!(rerun2["files_done"], 1, "{rerun2}");
    assert_eq!(
        std::fs::read(copied.join("Q1 report.txt")).unwrap(),
        b"quarter one, revised"
    );
}

#[test]
fn symlinks_and_single_files_and_paging() {
    let w = World::new();
    let dir = w.share.join("many");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..2500 {
        std::fs::write(dir.join(format!("f{i:04}")), i.to_string()).unwrap();
    }
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.join("f0001"), dir.join("link")).unwrap();
    // Paging: every entry once, in pages.
    let mut names = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!(
            "/api/v1/connectors/{}/browse?path={}",
            w.connector,
            form_encode(dir.to_str().unwrap())
        );
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", form_encode(c)));
        }
        let (status, page) = w.bifrost.api("GET", &path, None);
        assert_eq!(status, 200, "{page}");
        pages += 1;
        for e in page["entries"].as_array().unwrap() {
            assert!(names.insert(e["name"].as_str().unwrap().to_owned()));
            if e["name"] == "link" {
                assert_eq!(e["kind"], "symlink");
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(names.len(), 2500 + usize::from(cfg!(unix)));
    assert!(pages >= 3);

    let dest = w.dir.path().join("dest");
    let one = w.src("many/f0042");
    let job = w
        .bifrost
        .create_job(&w.connector, &[&w.src("many"), &one], &dest, Some(16));
    let done = w.bifrost.wait_job(&job, Duration::from_secs(120));
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["files_done"], 2501);
    assert_eq!(std::fs::read_to_string(dest.join("f0042")).unwrap(), "42");
    assert_eq!(
        std::fs::read_to_string(dest.join("many/f2499")).unwrap(),
        "2499"
    );
    #[cfg(unix)]
    {
        assert_eq!(done["files_skipped"], 1);
        let report = w.bifrost.files(&job);
        let link = report
            .iter()
            .find(|f| f["destination"] == dest.join("many/link").to_str().unwrap())
            .unwrap();
        assert_eq!(link["status"], "skipped");
        assert!(link["reason"].as_str().unwrap().contains("symbolic link"));
        assert!(!dest.join("many/link").exists());
    }
}

#[cfg(unix)]
#[test]
fn names_that_are_not_utf8_are_recreated_exactly() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let w = World::new();
    // Latin-1 names, as old Samba shares and tarballs leave them.
    let folder = w.share.join("legacy").join(OsStr::from_bytes(b"Re\xe7us"));
    std::fs::create_dir_all(&folder).unwrap();
    let file = folder.join(OsStr::from_bytes(b"caf\xe9 menu.txt"));
    std::fs::write(&file, "menu").unwrap();
    std::fs::write(w.share.join("legacy/plain.txt"), "plain").unwrap();

    let (status, page) = w.browse(&w.src("legacy"));
    assert_eq!(status, 200, "{page}");
    let odd = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name_b64"].is_string())
        .expect("an entry with exact bytes")
        .clone();
    assert_eq!(odd["name"], "Re\u{fffd}us");
    // The folder can be browsed by its exact bytes.
    let mut raw = w.src("legacy").into_bytes();
    raw.extend_from_slice(b"/Re\xe7us");
    let b64 = base64_encode(&raw);
    let (status, page) = w.bifrost.api(
        "GET",
        &format!(
            "/api/v1/connectors/{}/browse?path_b64={}",
            w.connector,
            form_encode(&b64)
        ),
        None,
    );
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["entries"][0]["name"], "caf\u{fffd} menu.txt");

    let dest = w.dir.path().join("dest");
    let job = w
        .bifrost
        .create_job(&w.connector, &[&w.src("legacy")], &dest, None);
    let done = w.bifrost.wait_job(&job, Duration::from_secs(30));
    assert_eq!(done["state"], "completed", "{done}");
    let copied = dest
        .join("legacy")
        .join(OsStr::from_bytes(b"Re\xe7us"))
        .join(OsStr::from_bytes(b"caf\xe9 menu.txt"));
    assert_eq!(std::fs::read_to_string(copied).unwrap(), "menu");
    assert_eq!(
        std::fs::read_to_string(dest.join("legacy/plain.txt")).unwrap(),
        "plain"
    );
}

/// Names that could share a temporary file at the destination: two that differ only in bytes
/// that are not UTF-8, and a file named like another's temporary file. Copied in one batch, each
/// keeps its own content.
#[cfg(unix)]
#[test]
fn files_whose_temporary_names_could_clash_keep_their_own_content() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let w = World::new();
    let src = w.share.join("clash");
    std::fs::create_dir_all(&src).unwrap();
    let files: [(&[u8], &str); 4] = [
        (b"caf\xe9", "e acute"),
        (b"caf\xe8", "e grave"),
        (b".x.mover-part", "named like a temporary file"),
        (b"x", "x itself"),
    ];
    for (name, content) in files {
        std::fs::write(src.join(OsStr::from_bytes(name)), content).unwrap();
    }
    let dest = w.dir.path().join("dest");
    let job = w
        .bifrost
        .create_job(&w.connector, &[&w.src("clash")], &dest, None);
    let done = w.bifrost.wait_job(&job, Duration::from_secs(30));
    assert_eq!(done["state"], "completed", "{done}");
    for (name, content) in files {
        let copied = dest.join("clash").join(OsStr::from_bytes(name));
        assert_eq!(
            std::fs::read_to_string(&copied).unwrap(),
            content,
            "{copied:?}"
        );
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Copying starts with the first files the scan records, not after the whole listing.
#[test]
fn copying_starts_while_the_sources_are_still_being_listed() {
    let w = World::new();
    let root = w.share.join("many");
    std::fs::create_dir_all(&root).unwrap();
    // A first commit's worth of files, then a chain of nested folders: each level is found
    // only once its parent is listed, so the listing takes a round trip per level.
    let first = 2000;
    for f in 0..first {
        std::fs::write(root.join(format!("f{f}")), [f as u8]).unwrap();
    }
    let depth = 300;
    let mut level = root.clone();
    for d in 0..depth {
        level = level.join("c");
        std::fs::create_dir_all(&level).unwrap();
        std::fs::write(level.join("f"), [d as u8]).unwrap();
    }
    let total = (first + depth) as u64;
    // In memory where there is such a folder: the first batch's fsyncs then cost nothing, and
    // the test shows the order of the two, not the speed of the disk.
    let shm = Path::new("/dev/shm");
    let dest_dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir_in(w.dir.path()).unwrap()
    };
    let dest = dest_dir.path().join("dest");
    let job = w
        .bifrost
        .create_job(&w.connector, &[&w.src("many")], &dest, None);
    let start = std::time::Instant::now();
    let mut seen_copying_while_listing = None;
    let done = loop {
        let j = w.bifrost.job(&job);
        let listed = j["files_total"].as_u64().unwrap();
        let copied = j["files_done"].as_u64().unwrap();
        if copied > 0 && listed < total {
            seen_copying_while_listing.get_or_insert((listed, copied));
        }
        if j["state"] != "running" && j["state"] != "queued" {
            break j;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{j}");
        std::thread::sleep(Duration::from_millis(2));
    };
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["files_done"], total);
    assert!(
        seen_copying_while_listing.is_some(),
        "no file was copied before all {total} were listed"
    );
    assert_eq!(tree(&dest.join("many")), tree(&root));
}
