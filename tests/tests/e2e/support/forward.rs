//! A TCP forwarder between an agent and Bifrost that freezes, cuts, throttles and counts.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A TCP forwarder between the agent and Bifrost that can freeze the link (bytes stop flowing
/// both ways while both sockets stay open, as on a dead WAN path) or cut it, and counts the
/// bytes the agent sent through it.
pub struct Forwarder {
    pub port: u16,
    frozen: Arc<std::sync::atomic::AtomicBool>,
    up: Arc<std::sync::atomic::AtomicU64>,
    live: Arc<Mutex<Vec<std::net::TcpStream>>>,
    /// Every connection made, with the bytes the agent sent on it.
    conns: Connections,
    /// Bytes per second each connection may carry towards Bifrost; 0 is unlimited.
    rate: Arc<std::sync::atomic::AtomicU64>,
}

/// Every connection through a forwarder, with the bytes the agent sent on it.
type Connections = Arc<Mutex<Vec<(std::net::TcpStream, Arc<std::sync::atomic::AtomicU64>)>>>;

impl Forwarder {
    pub fn new(target: &str) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let up = Arc::new(AtomicU64::new(0));
        let live: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let conns: Connections = Arc::default();
        let rate = Arc::new(AtomicU64::new(0));
        let (flag, target, counter, sockets, all, limit) = (
            frozen.clone(),
            target.to_owned(),
            up.clone(),
            live.clone(),
            conns.clone(),
            rate.clone(),
        );
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                    continue;
                };
                sockets.lock().unwrap().push(client.try_clone().unwrap());
                let mine = Arc::new(AtomicU64::new(0));
                all.lock()
                    .unwrap()
                    .push((client.try_clone().unwrap(), mine.clone()));
                for (mut from, mut to, count) in [
                    (
                        client.try_clone().unwrap(),
                        upstream.try_clone().unwrap(),
                        Some((counter.clone(), mine)),
                    ),
                    (upstream, client, None),
                ] {
                    let flag = flag.clone();
                    let limit = limit.clone();
                    std::thread::spawn(move || {
                        use std::io::Write;
                        let mut buf = vec![0u8; 64 * 1024];
                        let began = Instant::now();
                        let mut moved = 0u64;
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            while flag.load(Ordering::Relaxed) {
                                std::thread::sleep(Duration::from_millis(100));
                            }
                            if let Some((total, mine)) = &count {
                                total.fetch_add(n as u64, Ordering::Relaxed);
                                mine.fetch_add(n as u64, Ordering::Relaxed);
                                moved += n as u64;
                                let rate = limit.load(Ordering::Relaxed);
                                if rate > 0 {
                                    let due = Duration::from_secs_f64(moved as f64 / rate as f64);
                                    if let Some(wait) = due.checked_sub(began.elapsed()) {
                                        std::thread::sleep(wait);
                                    }
                                }
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self {
            port,
            frozen,
            up,
            live,
            conns,
            rate,
        }
    }

    /// Caps each connection's rate towards Bifrost (bytes per second), like a slow uplink.
    pub fn throttle(&self, bytes_per_sec: u64) {
        self.rate
            .store(bytes_per_sec, std::sync::atomic::Ordering::Relaxed);
    }

    /// Bytes the agent sent on each connection made so far, in the order they were made.
    pub fn per_connection(&self) -> Vec<u64> {
        self.conns
            .lock()
            .unwrap()
            .iter()
            .map(|(_, n)| n.load(std::sync::atomic::Ordering::Relaxed))
            .collect()
    }

    /// Closes the `i`th connection made.
    pub fn cut_connection(&self, i: usize) {
        if let Some((s, _)) = self.conns.lock().unwrap().get(i) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Bytes the agent has sent through the forwarder so far.
    pub fn bytes_up(&self) -> u64 {
        self.up.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Closes every connection through the forwarder (new ones still pass).
    pub fn cut(&self) {
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Stops all traffic without closing anything.
    pub fn freeze(&self) {
        self.frozen
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
