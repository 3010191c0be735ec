//! Clients that have not authenticated, and agents that misbehave at the door: idle and slow
//! connections, made-up keys, upgrade floods, a revocation race, lane races, token guessing,
//! and the admin token kept off a journal.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mover_proto::limits::{
    BODY_TIMEOUT_SECS, MAX_CONNECTIONS_PER_ADDR, MAX_LANES, MAX_WAITING_PER_ADDR,
    WRONG_TOKENS_PER_MIN,
};
use serde_json::json;

use crate::raw::{self, random_key, upgrade};
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
fn made_up_previous_keys_leave_the_connector_table_alone() {
    let w = World::new();
    let rows = connector_rows(&w.bifrost);
    let listed = w.bifrost.connectors();
    let (to, tls) = (sockaddr(&w.bifrost), raw::tls(&w.ca.ca_pem));
    let rt = runtime();
    let answered = Arc::new(AtomicUsize::new(0));
    let upgraded = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(120);
    rt.block_on(async {
        let workers: Vec<_> = (0..16)
            .map(|_| {
                let (tls, answered, upgraded) = (tls.clone(), answered.clone(), upgraded.clone());
                tokio::spawn(async move {
                    let mut tunnels = Vec::new();
                    let mut conn = None;
                    while answered.load(Ordering::Relaxed) < 10_000 && Instant::now() < deadline {
                        if conn.is_none() {
                            conn = raw::connect(to, ip("127.0.0.4"), tls.clone()).await.ok();
                        }
                        let Some(c) = conn.as_mut() else { continue };
                        let req = upgrade(
                            &random_key(),
                            &[(mover_proto::header::PREVIOUS_KEY, random_key())],
                        );
                        let sent = raw::send(c, &req).await;
                        if sent.is_ok() {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        match sent {
                            Ok(head) if head.status == 101 => {
                                upgraded.fetch_add(1, Ordering::Relaxed);
                                // Kept waiting: the later upgrades meet the cap.
                                tunnels.push(raw::serve_tunnel(conn.take().unwrap()));
                            }
                            Ok(head)
                                if head.headers.get("connection").is_some_and(|v| v == "close") =>
                            {
                                conn = None
                            }
                            Ok(_) => {}
                            Err(_) => conn = None,
                        }
                    }
                    tunnels
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
    });
    assert!(
        answered.load(Ordering::Relaxed) >= 10_000,
        "only {answered:?} upgrades answered in time"
    );
    eprintln!(
        "{} of 10,000 upgrades were answered 101",
        upgraded.load(Ordering::Relaxed)
    );
    assert_eq!(
        connector_rows(&w.bifrost),
        rows,
        "rows were added for made-up keys"
    );
    let ids = |l: &[serde_json::Value]| -> Vec<String> {
        l.iter()
            .filter(|c| c["state"] != "waiting")
            .map(|c| format!("{}{}", c["id"], c["state"]))
            .collect()
    };
    assert_eq!(ids(&w.bifrost.connectors()), ids(&listed));
    drop(rt);
}

#[test]
fn concurrent_upgrades_from_one_address_leave_at_most_the_limit_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let (to, tls) = (sockaddr(&bifrost), raw::tls(&ca.ca_pem));
    let rt = runtime();
    // Connected first, then all upgraded at once.
    let conns: Vec<_> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..200 {
            v.push(
                raw::connect(to, ip("127.0.0.5"), tls.clone())
                    .await
                    .unwrap(),
            );
        }
        v
    });
    let tunnels: Vec<_> = rt.block_on(async {
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|mut c| {
                tokio::spawn(async move {
                    let head = raw::send(&mut c, &upgrade(&random_key(), &[])).await.ok()?;
                    (head.status == 101).then(|| raw::serve_tunnel(c))
                })
            })
            .collect();
        let mut up = Vec::new();
        for t in tasks {
            up.extend(t.await.unwrap());
        }
        up
    });
    let waiting = || {
        bifrost
            .connectors()
            .iter()
            .filter(|c| c["state"] == "waiting")
            .count()
    };
    // Each tunnel answered 101 registers a moment later.
    wait_for(Duration::from_secs(10), "the tunnels to register", || {
        (waiting() == tunnels.len()).then_some(())
    });
    assert!(
        tunnels.len() <= MAX_WAITING_PER_ADDR,
        "{} of 200 concurrent upgrades from one address were let in",
        tunnels.len()
    );
    assert!(waiting() <= MAX_WAITING_PER_ADDR);
    drop(rt);
}

/// A raw tunnel with a fresh key, authorized; returns its key, connector id and tunnel id.
fn authorized_raw_tunnel(
    rt: &tokio::runtime::Runtime,
    bifrost: &Bifrost,
    tls: &Arc<rustls::ClientConfig>,
) -> (String, String, u64) {
    let key = random_key();
    let (head, served) = rt
        .block_on(raw::tunnel(
            sockaddr(bifrost),
            ip("127.0.0.1"),
            tls.clone(),
            &upgrade(&key, &[]),
        ))
        .unwrap();
    assert_eq!(head.status, 101);
    // The tunnel serves on in the runtime's background.
    drop(served);
    let tunnel_id = head.headers[mover_proto::header::TUNNEL_ID]
        .parse()
        .unwrap();
    let id = bifrost.authorize(&key, "raw")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (key, id, tunnel_id)
}

#[test]
fn a_connector_revoked_while_it_reconnects_in_a_tight_loop_stays_gone() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let (to, tls) = (sockaddr(&bifrost), raw::tls(&ca.ca_pem));
    let rt = runtime();
    let (key, id, _) = authorized_raw_tunnel(&rt, &bifrost, &tls);
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    let reconnected = Arc::new(AtomicUsize::new(0));
    let loops: Vec<_> = (0..6)
        .map(|_| {
            let (tls, stop, refused, reconnected, key) = (
                tls.clone(),
                stop.clone(),
                refused.clone(),
                reconnected.clone(),
                key.clone(),
            );
            rt.spawn(async move {
                for _ in 0..5_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match raw::tunnel(to, ip("127.0.0.1"), tls.clone(), &upgrade(&key, &[])).await {
                        Ok((head, _)) if head.status == 403 => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((head, _)) if head.status == 101 => {
                            reconnected.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
            })
        })
        .collect();
    // Revoked while the reconnects are in full swing.
    wait_for(Duration::from_secs(20), "authorized reconnects", || {
        (reconnected.load(Ordering::Relaxed) >= 50).then_some(())
    });
    let (status, body) = bifrost.api("DELETE", &format!("/api/v1/connectors/{id}"), None);
    assert_eq!(status, 204, "{body}");
    // The loops go on until the revocation has been refused to them for a while.
    wait_for(
        Duration::from_secs(20),
        "upgrades refused after the revocation",
        || (refused.load(Ordering::Relaxed) >= 30).then_some(()),
    );
    stop.store(true, Ordering::Relaxed);
    rt.block_on(async {
        for l in loops {
            l.await.unwrap();
        }
    });
    let (status, body) = bifrost.api(
        "GET",
        &format!("/api/v1/connectors/{id}/browse?path=/"),
        None,
    );
    assert_eq!(status, 404, "browsing a revoked connector: {body}");
    let (status, body) = bifrost.api(
        "POST",
        "/api/v1/jobs",
        Some(json!({"connector": id, "sources": ["/x"], "destination": {"kind": "folder", "path": dir.path().join("dest")}})),
    );
    assert_eq!(status, 404, "a job naming a revoked connector: {body}");
    assert!(bifrost.connectors().iter().all(|c| c["id"] != id.as_str()));
    drop(rt);
}

#[test]
fn racing_lane_upgrades_never_exceed_the_lane_limit() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let bifrost = Bifrost::start(dir.path(), &ca);
    let (to, tls) = (sockaddr(&bifrost), raw::tls(&ca.ca_pem));
    let rt = runtime();
    let (key, id, tunnel_id) = authorized_raw_tunnel(&rt, &bifrost, &tls);
    let req = upgrade(
        &key,
        &[(mover_proto::header::LANE_OF, tunnel_id.to_string())],
    );
    let conns: Vec<_> = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..50 {
            v.push(
                raw::connect(to, ip("127.0.0.6"), tls.clone())
                    .await
                    .unwrap(),
            );
        }
        v
    });
    let lanes: Vec<_> = rt.block_on(async {
        let tasks: Vec<_> = conns
            .into_iter()
            .map(|mut c| {
                let req = req.clone();
                tokio::spawn(async move {
                    let head = raw::send(&mut c, &req).await.ok()?;
                    (head.status == 101).then(|| raw::serve_tunnel(c))
                })
            })
            .collect();
        let mut up = Vec::new();
        for t in tasks {
            up.extend(t.await.unwrap());
        }
        up
    });
    let connections = wait_for(Duration::from_secs(10), "the lanes to register", || {
        let c = bifrost.wait_connector("the raw connector", |c| c["id"] == id.as_str());
        let n = c["connections"].as_u64().unwrap() as usize;
        (n == lanes.len() + 1).then_some(n)
    });
    assert!(
        lanes.len() <= MAX_LANES && connections <= MAX_LANES + 1,
        "{} racing lanes were let in ({connections} connections)",
        lanes.len()
    );
    drop(rt);
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
