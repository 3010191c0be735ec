//! A hostile agent tells Bifrost every lie of issue 15: Bifrost stays up, its memory stays
//! bounded, the browse or job fails with the reason, and nothing lands outside the destination.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::fake_agent::{Asked, FakeAgent, Reply};
use crate::support::{form_encode, Bifrost, TestCa};

/// What Bifrost may hold while it is lied to (it idles at ~20 MiB).
const RSS_BOUND_MIB: u64 = 300;

struct Scene {
    dir: tempfile::TempDir,
    ca: TestCa,
    bifrost: Bifrost,
}

impl Scene {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new(dir.path());
        let bifrost = Bifrost::start(dir.path(), &ca);
        Self { dir, ca, bifrost }
    }

    fn liar(
        &self,
        handler: impl Fn(&Asked) -> Option<Reply> + Send + Sync + 'static,
    ) -> (FakeAgent, String) {
        FakeAgent::authorized(&self.bifrost, &self.ca, handler)
    }

    fn browse(&self, id: &str, path: &str) -> (u16, Value) {
        let q = form_encode(path);
        self.bifrost.api(
            "GET",
            &format!("/api/v1/connectors/{id}/browse?path={q}"),
            None,
        )
    }

    /// Copies `sources` into `DIR/dest/inner`, waits for the end, returns the job and report.
    fn copy(&self, id: &str, sources: &[&str]) -> (Value, Vec<Value>) {
        let dest = self.dest().join("inner");
        let job = self.bifrost.create_job(id, sources, &dest, None);
        let done = self.bifrost.wait_job(&job, Duration::from_secs(120));
        (done, self.bifrost.files(&job))
    }

    fn dest(&self) -> std::path::PathBuf {
        self.dir.path().join("dest")
    }

    /// Bifrost is up, answers, and holds less than the bound.
    fn still_fine(&mut self) {
        assert!(self.bifrost.alive(), "Bifrost died");
        let (status, _) = self.bifrost.api("GET", "/api/v1/connectors", None);
        assert_eq!(status, 200);
        let rss = self.bifrost.rss_mib();
        eprintln!("Bifrost's RSS after the lie: {rss} MiB");
        assert!(rss < RSS_BOUND_MIB, "Bifrost holds {rss} MiB");
        // Nothing but `inner` under the destination.
        if let Ok(entries) = std::fs::read_dir(self.dest()) {
            let names: Vec<_> = entries.map(|e| e.unwrap().file_name()).collect();
            assert!(
                names.iter().all(|n| n == "inner"),
                "written outside the job's destination: {names:?}"
            );
        }
    }
}

fn entry(name: &str, kind: &str, size: u64) -> Value {
    json!({"name": name, "kind": kind, "size": size, "modified": "2026-01-01T00:00:00Z"})
}

fn dir_stat(a: &Asked) -> Option<Reply> {
    (a.route == "/v1/stat").then(|| Reply::Json(entry("share", "dir", 0)))
}

fn reason_of<'a>(files: &'a [Value], reason: &str) -> &'a Value {
    files
        .iter()
        .find(|f| f["reason"].as_str().is_some_and(|r| r.contains(reason)))
        .unwrap_or_else(|| panic!("no file failed with {reason:?}: {files:?}"))
}

#[test]
fn a_huge_page_fails_its_folder_without_costing_memory() {
    let mut s = Scene::new();
    let names: Vec<Value> = (0..500_000)
        .map(|i| entry(&format!("f{i}"), "file", 1))
        .collect();
    let page = Bytes::from(json!({"entries": names, "next_cursor": null}).to_string());
    let (_agent, id) = s.liar(move |a| match a.route.as_str() {
        "/v1/browse" => Some(Reply::Bytes {
            status: 200,
            headers: vec![],
            body: page.clone(),
            trailers: vec![],
        }),
        _ => dir_stat(a),
    });
    let (status, body) = s.browse(&id, "/share");
    assert_eq!(status, 502, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .starts_with("agent sent a page of over"));
    let (job, files) = s.copy(&id, &["/share"]);
    assert_eq!(job["state"], "completed_with_errors", "{job}");
    assert_eq!(reason_of(&files, "agent sent a page")["status"], "failed");
    s.still_fine();
}

#[test]
fn a_cursor_that_never_ends_stops_at_the_page_limit() {
    let mut s = Scene::new();
    let (_agent, id) = s.liar(|a| match a.route.as_str() {
        "/v1/browse" => Some(Reply::Json(json!({"entries": [], "next_cursor": "again"}))),
        _ => dir_stat(a),
    });
    let (job, files) = s.copy(&id, &["/share"]);
    assert_eq!(job["state"], "completed_with_errors", "{job}");
    reason_of(&files, "pages for one folder");
    s.still_fine();
}

#[test]
fn names_of_60_kib_and_sizes_of_2_pow_62_are_refused() {
    let mut s = Scene::new();
    let long = "n".repeat(60 * 1024);
    let (_agent, id) = s.liar(move |a| match (a.route.as_str(), a.path()) {
        ("/v1/browse", "/share/long") => Some(Reply::Json(
            json!({"entries": [entry(&long, "file", 1)], "next_cursor": null}),
        )),
        ("/v1/browse", "/share/huge") => Some(Reply::Json(
            json!({"entries": [entry("f", "file", 1 << 62)], "next_cursor": null}),
        )),
        ("/v1/stat", "/share/huge.bin") => Some(Reply::Json(entry("huge.bin", "file", 1 << 62))),
        _ => dir_stat(a),
    });
    let (status, body) = s.browse(&id, "/share/long");
    assert_eq!(status, 502, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("agent sent a name of 61440 bytes"));
    let (status, body) = s.browse(&id, "/share/huge");
    assert_eq!(status, 502, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("agent sent a file size"));
    let (_, files) = s.copy(&id, &["/share/long", "/share/huge"]);
    reason_of(&files, "agent sent a name of 61440 bytes");
    reason_of(&files, "agent sent a file size of 4611686018427387904");
    // A file chosen by name: the job is refused at once, before anything is planned.
    let (status, body) = s.bifrost.api(
        "POST",
        "/api/v1/jobs",
        Some(json!({"connector": id, "sources": ["/share/huge.bin"],
            "destination": {"kind": "folder", "path": s.dest()}})),
    );
    assert_eq!(status, 502, "{body}");
    s.still_fine();
}

#[test]
fn unsafe_names_from_the_agent_never_leave_the_destination() {
    let mut s = Scene::new();
    let (_agent, id) = s.liar(|a| match (a.route.as_str(), a.path()) {
        ("/v1/browse", "/share") => Some(Reply::Json(json!({"entries": [
            entry("..", "dir", 0), entry(".", "dir", 0), entry("a/b", "file", 3),
            entry("", "file", 3), entry("a\0b", "file", 3), entry(r"x\..", "dir", 0),
        ], "next_cursor": null}))),
        ("/v1/browse", _) => Some(Reply::Json(json!({"entries": [
            entry("canary.txt", "file", 3)], "next_cursor": null}))),
        ("/v1/read", p) if p.ends_with("canary.txt") => Some(Reply::Bytes {
            status: 200,
            headers: vec![
                ("x-mover-size", "3".into()),
                ("x-mover-modified", "2026-01-01T00:00:00Z".into()),
            ],
            body: Bytes::from_static(b"hi\n"),
            trailers: vec![("x-mover-blake3", blake3::hash(b"hi\n").to_hex().to_string())],
        }),
        _ => dir_stat(a),
    });
    let (job, files) = s.copy(&id, &["/share"]);
    assert_eq!(job["state"], "completed_with_errors", "{job}");
    let unsafe_names = files
        .iter()
        .filter(|f| {
            f["reason"]
                .as_str()
                .is_some_and(|r| r.contains("unsafe file name"))
                && f["kind"] == "limit"
        })
        .count();
    assert_eq!(unsafe_names, 5, "{files:?}");
    // `x\..` is one name on a Unix agent: it lands as its own folder.
    let landed = s
        .dest()
        .join("inner/share")
        .join(r"x\..")
        .join("canary.txt");
    assert_eq!(std::fs::read(&landed).unwrap(), b"hi\n");
    s.still_fine();
}

/// A file's bytes as the liar serves them: `(offset * 31) % 251`.
fn content(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i * 31 % 251) as u8)
        .collect::<Vec<_>>()
        .into()
}

fn read_headers(size: usize) -> Vec<(&'static str, String)> {
    vec![
        ("x-mover-size", size.to_string()),
        ("x-mover-modified", "2026-01-01T00:00:00Z".into()),
    ]
}

#[test]
fn a_read_ten_times_longer_than_announced_writes_no_more_than_announced() {
    let mut s = Scene::new();
    let (big, small) = (2 << 20, 1000usize);
    let (_agent, id) = s.liar(move |a| match (a.route.as_str(), a.path()) {
        ("/v1/browse", _) => Some(Reply::Json(json!({"entries": [
            entry("big", "file", big as u64), entry("small", "file", small as u64)],
            "next_cursor": null}))),
        ("/v1/read", p) => {
            let size = if p.ends_with("big") { big } else { small };
            Some(Reply::Stream {
                status: 200,
                headers: read_headers(size),
                chunk: content(size),
                count: 10,
                trailers: vec![("x-mover-blake3", "00".repeat(32))],
            })
        }
        _ => dir_stat(a),
    });
    let (_, files) = s.copy(&id, &["/share"]);
    for name in ["big", "small"] {
        let f = files
            .iter()
            .find(|f| f["source"] == format!("/share/{name}"))
            .unwrap();
        assert_eq!(f["status"], "failed", "{f}");
        assert!(
            f["reason"]
                .as_str()
                .unwrap()
                .contains("agent sent more than"),
            "{f}"
        );
    }
    let mut held = 0;
    for e in walkdir(&s.dest()) {
        held += std::fs::metadata(&e).unwrap().len();
    }
    assert!(held <= big as u64, "{held} bytes at the destination");
    s.still_fine();
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walkdir(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn a_part_longer_than_its_range_never_overwrites_its_neighbour() {
    use blake3::hazmat::HasherExt;
    let mut s = Scene::new();
    let size = 80 << 20;
    let data = content(size);
    let whole = blake3::hash(&data).to_hex().to_string();
    let lied = std::sync::atomic::AtomicBool::new(false);
    let served = data.clone();
    let (agent, id) = s.liar(move |a| match (a.route.as_str(), a.range) {
        ("/v1/browse", _) => Some(Reply::Json(json!({"entries": [
            entry("big", "file", size as u64)], "next_cursor": null}))),
        ("/v1/stat", _) if a.path().ends_with("big") => {
            Some(Reply::Json(entry("big", "file", size as u64)))
        }
        ("/v1/read", Some((start, Some(last)))) => {
            let (start, end) = (start as usize, last as usize + 1);
            let mut h = blake3::Hasher::new();
            h.set_input_offset(start as u64);
            h.update(&served[start..end]);
            let cv: String = h
                .finalize_non_root()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let honest = Reply::Bytes {
                status: 206,
                headers: read_headers(size),
                body: served.slice(start..end),
                trailers: vec![("x-mover-subtree-cv", cv)],
            };
            // The first part, once, late, runs 8 MiB of 0xff past its end over the parts
            // after it, which are journaled by then.
            if start == 0 && !lied.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let Reply::Bytes { body, trailers, .. } = honest else {
                    unreachable!()
                };
                let mut long = body.to_vec();
                long.extend(std::iter::repeat_n(0xff, 8 << 20));
                return Some(Reply::Later(
                    Duration::from_millis(1500),
                    Box::new(Reply::Bytes {
                        status: 206,
                        headers: read_headers(size),
                        body: long.into(),
                        trailers,
                    }),
                ));
            }
            Some(honest)
        }
        _ => dir_stat(a),
    });
    agent.open_lanes(1);
    s.bifrost
        .wait_connector("the lane to be up", |c| c["id"] == id.as_str());
    std::thread::sleep(Duration::from_millis(300));
    let (job, files) = s.copy(&id, &["/share"]);
    assert_eq!(job["state"], "completed", "{job} {files:?}");
    let landed = std::fs::read(s.dest().join("inner/share/big")).unwrap();
    assert_eq!(landed.len(), size);
    assert_eq!(
        blake3::hash(&landed).to_hex().to_string(),
        whole,
        "bytes on disk"
    );
    let f = files.iter().find(|f| f["source"] == "/share/big").unwrap();
    assert_eq!(f["blake3"], whole.as_str());
    s.still_fine();
}

#[test]
fn an_event_flood_is_dropped_not_served() {
    use std::sync::atomic::Ordering;
    let mut s = Scene::new();
    // A million `Hello`s: far past HTTP/2's windows, so once they have all gone out, Bifrost
    // has read most of them.
    let count = 1_000_000;
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let hello = json!({"event": "hello", "version": "0.0.0-liar", "os": "linux 12",
        "host": "flooding", "roots": []})
    .to_string();
    let out = sent.clone();
    let (_agent, id) = s.liar(move |a| match a.route.as_str() {
        "/v1/events" => Some(Reply::Flood(hello.clone(), count, out.clone())),
        _ => dir_stat(a),
    });
    let cpu_before = cpu_seconds(s.bifrost.pid());
    crate::support::wait_for(Duration::from_secs(120), "the flood to go out", || {
        (sent.load(Ordering::Relaxed) >= count).then_some(())
    });
    let cpu = cpu_seconds(s.bifrost.pid()) - cpu_before;
    eprintln!("Bifrost read {count} events with {cpu:.2} s of CPU");
    // Acting on each (a database write per `Hello`) costs tens of seconds; reading and
    // dropping them, a few.
    assert!(cpu < 15.0, "Bifrost spent {cpu:.2} s of CPU on the flood");
    let (status, _) = s.browse(&id, "/share");
    assert!(status < 500, "browse answered {status}");
    let c = s
        .bifrost
        .wait_connector("the liar", |c| c["id"] == id.as_str());
    assert_eq!(c["host"], "flooding", "{c}");
    s.still_fine();
}

/// User and system CPU time of a process so far, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}
