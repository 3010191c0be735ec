//! Tunnel upgrades from clients that have not authenticated, and from an authorized key at the
//! moment it is revoked: made-up previous keys, a flood from one address, a reconnect loop
//! racing a revocation, and racing lanes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mover_proto::limits::{MAX_LANES, MAX_WAITING_PER_ADDR};
use serde_json::json;

use super::{connector_rows, ip, runtime, sockaddr};
use crate::raw::{self, random_key, upgrade};
use crate::support::{wait_for, Bifrost, TestCa, World};

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
