//! Clients that have not authenticated, and agents that misbehave at the door: idle and slow
//! connections, token guessing and the admin token kept off a journal here; tunnel upgrades
//! (made-up keys, floods, the revocation race, lane races) in `upgrades.rs`.

mod upgrades;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mover_proto::limits::{BODY_TIMEOUT_SECS, MAX_CONNECTIONS_PER_ADDR, WRONG_TOKENS_PER_MIN};
use serde_json::json;

use crate::raw;
use crate::support::{noise, wait_for, Agent, Bifrost, TestCa, World};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn sockaddr(b: &Bifrost) -> SocketAddr {
    b.addr.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Open descriptors and resident KiB of a process.
fn fds_and_rss(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    (fds, rss)
}

/// Rows in the connectors table, revoked ones included.
fn connector_rows(b: &Bifrost) -> i64 {
    let db = rusqlite::Connection::open(b.data.join("bifrost.db")).unwrap();
    db.query_row("SELECT COUNT(*) FROM connectors", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn idle_connections_and_slow_bodies_leave_room_for_agents_and_jobs() {
    let w = World::new();
    for i in 0..24 {
        std::fs::write(w.share.join(format!("f{i:02}")), noise(1 << 20, i)).unwrap();
    }
    let dest = w.dir.path().join("dest");
    // Paced to run through the flood: 24 MiB at 3 MiB/s.
    let (status, job) = w.bifrost.api(
        "POST",
        "/api/v1/jobs",
        Some(json!({"connector": w.connector, "sources": [w.share], "destination": {"kind": "folder", "path": dest}, "bandwidth_limit": 3 << 20})),
    );
    assert_eq!(status, 201, "{job}");
    let job = job["id"].as_str().unwrap().to_owned();
    let (pid, to, tls) = (
        w.bifrost.pid(),
        sockaddr(&w.bifrost),
        raw::tls(&w.ca.ca_pem),
    );
    let (fds_before, rss_before) = fds_and_rss(pid);
    let rt = runtime();
    let _guard = rt.enter();

    // 2,000 TLS connections from one address that then say nothing.
    let idle: Vec<_> = rt.block_on(async {
        let mut held = Vec::new();
        for batch in 0..20 {
            let tasks: Vec<_> = (0..100)
                .map(|_| tokio::spawn(raw::connect(to, ip("127.0.0.2"), tls.clone())))
                .collect();
            for t in tasks {
                if let Ok(Ok(conn)) = t.await {
                    held.push(conn);
                }
            }
            assert!(batch < 20);
        }
        held
    });
    // Slow bodies from another address: a sign-in whose body comes a byte a second.
    let closed = Arc::new(AtomicUsize::new(0));
    let slow = 50;
    for _ in 0..slow {
        let (tls, closed) = (tls.clone(), closed.clone());
        rt.spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut conn = raw::connect(to, ip("127.0.0.3"), tls).await.unwrap();
            let head = "POST /api/v1/session HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n";
            conn.write_all(head.as_bytes()).await.unwrap();
            let (mut rd, mut wr) = tokio::io::split(conn);
            let writer = tokio::spawn(async move {
                for _ in 0..120 {
                    if wr.write_all(b" ").await.is_err() || wr.flush().await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
            // Bifrost answers 408 and closes; anything it sends counts as the end.
            let mut buf = [0u8; 512];
            let _ = rd.read(&mut buf).await;
            writer.abort();
            closed.fetch_add(1, Ordering::Relaxed);
        });
    }
    std::thread::sleep(Duration::from_secs(2));
    let (fds, rss) = fds_and_rss(pid);
    eprintln!(
        "held {} of 2000 idle TLS connections; Bifrost: {fds_before} -> {fds} fds, {rss_before} -> {rss} KiB RSS",
        idle.len()
    );
    assert!(
        idle.len() <= MAX_CONNECTIONS_PER_ADDR,
        "{} idle connections from one address were accepted",
        idle.len()
    );
    let fd_bound = fds_before + MAX_CONNECTIONS_PER_ADDR + slow + 64;
    assert!(
        fds < fd_bound,
        "Bifrost holds {fds} descriptors (bound {fd_bound})"
    );
    assert!(rss < 256 * 1024, "Bifrost's RSS is {rss} KiB");

    // A new agent still connects and is authorized while they are held.
    let home = w.dir.path().join("home2");
    let agent = Agent::start_for(&home, &w.bifrost, &w.ca, &w.share);
    w.bifrost.authorize(&agent.key(), "second");
    agent.wait_status("authorized as second", Duration::from_secs(10));

    // Every slow body is cut off within its timeout.
    wait_for(
        Duration::from_secs(BODY_TIMEOUT_SECS + 20),
        "the slow bodies to be cut off",
        || (closed.load(Ordering::Relaxed) == slow).then_some(()),
    );
    let done = w.bifrost.wait_job(&job, Duration::from_secs(60));
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["files_failed"], 0, "{done}");
    drop(idle);
}

#[test]
fn wrong_bearer_tokens_are_slowed_down_and_limited() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let url = format!("{}/api/v1/connectors", bifrost.url);
    let get = |token: &str| {
        let start = Instant::now();
        let res = bifrost
            .client()
            .get(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap();
        let retry = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        (res.status().as_u16(), retry, start.elapsed())
    };
    for i in 0..WRONG_TOKENS_PER_MIN {
        let (status, _, took) = get("not-the-token");
        assert_eq!(status, 401, "wrong token {i}");
        assert!(
            took >= Duration::from_millis(300),
            "a wrong token answered in {took:?}"
        );
    }
    let (status, retry, _) = get("not-the-token");
    assert_eq!(status, 429, "past the limit");
    let retry = retry.expect("a Retry-After");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // While blocked even the right token waits: a guesser learns nothing.
    assert_eq!(get(&bifrost.token).0, 429);
    std::thread::sleep(Duration::from_secs(retry));
    let (status, _, _) = get(&bifrost.token);
    assert_eq!(status, 200, "the right token after Retry-After");
}

#[test]
fn the_admin_token_is_shown_in_full_only_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    // The harness pipes stdout, as a service manager does.
    let bifrost = Bifrost::start(dir.path(), &ca);
    let token = bifrost.token.clone();
    assert!(token.len() >= 32);
    let line = bifrost
        .stdout
        .wait_line("the admin token line", |l| l.starts_with("Admin token: "));
    assert!(
        line.contains(&token[..4]) && line.contains("admin.token"),
        "{line}"
    );
    // Give the logs a moment past start, then look everywhere the token could leak.
    bifrost.connectors();
    for l in bifrost.stdout.all().iter().chain(&bifrost.stderr.all()) {
        assert!(!l.contains(&token), "the full token was printed: {l}");
    }
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", bifrost.pid())).unwrap();
    assert!(!String::from_utf8_lossy(&cmdline).contains(&token));
}
