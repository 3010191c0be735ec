//! A test proxy (plain HTTP/1.1, not a product component) between Bifrost and an emulator: it
//! answers chosen requests with the service's own error bodies, or every request with 403 once
//! the credentials are "revoked", damages chosen request bodies on the way (one byte flipped),
//! records each request's headers and body digest, and forwards the rest.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// A request the proxy answers itself: the first `times` requests whose method is `method` and
/// whose target holds every one of `needles` get `status` with an S3 error body.
pub struct Rule {
    pub method: &'static str,
    pub needles: Vec<String>,
    pub times: usize,
    pub status: u16,
    pub code: &'static str,
    pub message: &'static str,
}

/// A request as the proxy received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    /// SHA-256 of the body as it arrived, before any damage.
    pub sha256: [u8; 32],
    pub len: usize,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Bodies to damage: the first `times` requests whose method is `method` and whose target
/// holds every one of `needles` and none of `not` reach the service with one byte flipped.
pub struct Damage {
    pub method: &'static str,
    pub needles: Vec<String>,
    pub not: Vec<String>,
    pub times: usize,
}

/// A test proxy (plain HTTP/1.1) between Bifrost and an emulator that injects faults.
pub struct FaultProxy {
    pub endpoint: String,
    pub rules: Arc<Mutex<Vec<Rule>>>,
    pub revoked: Arc<AtomicBool>,
    pub seen: Arc<Mutex<Vec<String>>>,
    pub requests: Arc<Mutex<Vec<Seen>>>,
    pub damage: Arc<Mutex<Vec<Damage>>>,
}

/// What one connection's requests are checked against and recorded in.
#[derive(Clone)]
struct Shared {
    rules: Arc<Mutex<Vec<Rule>>>,
    revoked: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
    requests: Arc<Mutex<Vec<Seen>>>,
    damage: Arc<Mutex<Vec<Damage>>>,
}

impl FaultProxy {
    pub fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let shared = Shared {
            rules: Arc::default(),
            revoked: Arc::new(AtomicBool::new(false)),
            seen: Arc::default(),
            requests: Arc::default(),
            damage: Arc::default(),
        };
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (s, up) = (s.clone(), upstream.clone());
                std::thread::spawn(move || serve(conn, &up, &s));
            }
        });
        Self {
            endpoint,
            rules: shared.rules,
            revoked: shared.revoked,
            seen: shared.seen,
            requests: shared.requests,
            damage: shared.damage,
        }
    }

    pub fn fail(&self, rule: Rule) {
        self.rules.lock().unwrap().push(rule);
    }

    pub fn damage(&self, d: Damage) {
        self.damage.lock().unwrap().push(d);
    }
}

/// Serves one client connection, request after request.
fn serve(conn: TcpStream, upstream: &str, shared: &Shared) {
    let Shared {
        rules,
        revoked,
        seen,
        requests,
        damage,
    } = shared;
    let mut out = conn.try_clone().unwrap();
    let mut input = BufReader::new(conn);
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            if input.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            head.push(line);
        }
        let Some(first) = head.first().cloned() else {
            return;
        };
        let mut parts = first.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let length: usize = head
            .iter()
            .find_map(|h| {
                let (k, v) = h.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        if input.read_exact(&mut body).is_err() {
            return;
        }
        seen.lock().unwrap().push(format!("{method} {target}"));
        requests.lock().unwrap().push(Seen {
            method: method.clone(),
            target: target.clone(),
            headers: head[1..]
                .iter()
                .filter_map(|h| h.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect(),
            sha256: Sha256::digest(&body).into(),
            len: body.len(),
        });
        let hit = damage.lock().unwrap().iter_mut().any(|d| {
            let hit = d.times > 0
                && d.method == method
                && d.needles.iter().all(|n| target.contains(n.as_str()))
                && !d.not.iter().any(|n| target.contains(n.as_str()));
            if hit {
                d.times -= 1;
            }
            hit
        });
        if hit && !body.is_empty() {
            let mid = body.len() / 2;
            body[mid] ^= 0xff;
        }
        let injected = if revoked.load(Ordering::SeqCst) {
            Some((
                403,
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
            ))
        } else {
            let mut rules = rules.lock().unwrap();
            rules
                .iter_mut()
                .find(|r| {
                    r.times > 0
                        && r.method == method
                        && r.needles.iter().all(|n| target.contains(n.as_str()))
                })
                .map(|r| {
                    r.times -= 1;
                    (r.status, r.code, r.message)
                })
        };
        let answer = match injected {
            Some((status, code, message)) => {
                let xml = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>");
                let mut a = format!("HTTP/1.1 {status} Injected\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\r\n", xml.len()).into_bytes();
                a.extend_from_slice(xml.as_bytes());
                a
            }
            None => forward(upstream, &head, &body, &method),
        };
        if out.write_all(&answer).is_err() {
            return;
        }
    }
}

/// One request to moto on a connection of its own; its answer with a length the client can
/// trust on a kept-alive connection.
fn forward(upstream: &str, head: &[String], body: &[u8], method: &str) -> Vec<u8> {
    let bad_gateway = |e: std::io::Error| {
        let text = format!("test proxy: moto: {e}");
        format!(
            "HTTP/1.1 502 Bad Gateway\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        )
        .into_bytes()
    };
    let mut up = match TcpStream::connect(upstream) {
        Ok(up) => up,
        Err(e) => return bad_gateway(e),
    };
    let mut req = Vec::new();
    for h in head {
        let name = h.split(':').next().unwrap_or("").to_ascii_lowercase();
        if name != "connection" && name != "keep-alive" {
            req.extend_from_slice(h.as_bytes());
        }
    }
    req.extend_from_slice(b"connection: close\r\n\r\n");
    req.extend_from_slice(body);
    let mut raw = Vec::new();
    if let Err(e) = up.write_all(&req).and_then(|()| up.read_to_end(&mut raw)) {
        return bad_gateway(e);
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or(raw.len());
    let (head, rest) = raw.split_at(split);
    let head = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        if !["connection", "content-length", "transfer-encoding"].contains(&name.as_str()) {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    // moto answers with a length, or closes: either way the whole body is `rest`. A HEAD
    // answer keeps the length of what a GET would send.
    let length = if method == "HEAD" {
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| "0".into())
    } else {
        rest.len().to_string()
    };
    out.push_str(&format!("content-length: {length}\r\n\r\n"));
    let mut a = out.into_bytes();
    if method != "HEAD" {
        a.extend_from_slice(rest);
    }
    a
}
