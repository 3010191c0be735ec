//! A hostile agent for tests: it performs the real tunnel upgrade with a key, then serves the
//! answers a test crafts over the reversed HTTP/2, so a test can tell Bifrost any lie.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use mover_proto::header;
use serde_json::{json, Value};

use crate::support::{Bifrost, TestCa};

/// What Bifrost asked for.
#[derive(Debug, Clone)]
pub struct Asked {
    /// The route, e.g. `/v1/browse`.
    pub route: String,
    /// Query parameters.
    pub query: HashMap<String, String>,
    /// `Range: bytes=A-B` as `(A, Some(B))`, or `(A, None)` for `A-`.
    pub range: Option<(u64, Option<u64>)>,
}

impl Asked {
    /// The `path` query parameter, or "".
    pub fn path(&self) -> &str {
        self.query.get("path").map(String::as_str).unwrap_or("")
    }
}

/// A crafted answer.
pub enum Reply {
    /// 200 with this JSON.
    Json(Value),
    /// An error status with a JSON error body.
    Error(u16, String),
    /// A streamed body: status, headers, `count` chunks of `chunk`, then trailers.
    Stream {
        status: u16,
        headers: Vec<(&'static str, String)>,
        chunk: Bytes,
        count: u64,
        trailers: Vec<(&'static str, String)>,
    },
    /// A whole body with headers and trailers (e.g. a file's bytes).
    Bytes {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Bytes,
        trailers: Vec<(&'static str, String)>,
    },
    /// Newline-delimited lines, then the stream stays open.
    Lines(Vec<String>),
    /// `count` copies of one line, then the stream stays open (a flood); the counter says
    /// how many have gone out (HTTP/2 flow control holds them until Bifrost reads).
    Flood(String, u64, Arc<std::sync::atomic::AtomicU64>),
    /// Another reply, after a pause.
    Later(std::time::Duration, Box<Reply>),
}

type Handler = dyn Fn(&Asked) -> Option<Reply> + Send + Sync;

/// A fake agent connected to Bifrost; its tunnel stays up until it is dropped.
pub struct FakeAgent {
    pub key: String,
    rt: Option<tokio::runtime::Runtime>,
    addr: String,
    ca_pem: String,
    handler: Arc<Handler>,
    tunnel: u64,
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl FakeAgent {
    /// Connects to `bifrost` as a Linux agent with a fresh key; `handler` answers every
    /// request it returns `Some` for; info, session, events and watch have defaults.
    pub fn connect(
        bifrost: &Bifrost,
        ca: &TestCa,
        handler: impl Fn(&Asked) -> Option<Reply> + Send + Sync + 'static,
    ) -> Self {
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).unwrap();
        let key: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let handler: Arc<Handler> = Arc::new(handler);
        let (addr, ca_pem) = (bifrost.addr.clone(), ca.ca_pem.clone());
        let tunnel = rt.block_on(dial(&addr, &ca_pem, &key, None, handler.clone()));
        Self {
            key,
            rt: Some(rt),
            addr,
            ca_pem,
            handler,
            tunnel,
        }
    }

    /// Opens `n` extra lanes of the (authorized) tunnel, serving the same answers.
    pub fn open_lanes(&self, n: usize) {
        let rt = self.rt.as_ref().unwrap();
        for _ in 0..n {
            rt.block_on(dial(
                &self.addr,
                &self.ca_pem,
                &self.key,
                Some(self.tunnel),
                self.handler.clone(),
            ));
        }
    }

    /// Connects and has `bifrost` authorize it; returns it with its connector id.
    pub fn authorized(
        bifrost: &Bifrost,
        ca: &TestCa,
        handler: impl Fn(&Asked) -> Option<Reply> + Send + Sync + 'static,
    ) -> (Self, String) {
        let agent = Self::connect(bifrost, ca, handler);
        let id = bifrost.authorize(&agent.key, "liar")["id"]
            .as_str()
            .unwrap()
            .to_owned();
        (agent, id)
    }
}

/// TLS, the HTTP/1.1 upgrade (as a lane of `lane_of`, if given), then HTTP/2 serving in the
/// background; returns the tunnel id Bifrost gave.
async fn dial(
    addr: &str,
    ca_pem: &str,
    key: &str,
    lane_of: Option<u64>,
    handler: Arc<Handler>,
) -> u64 {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut req = Request::get(mover_proto::TUNNEL_PATH)
        .header(http::header::HOST, addr)
        .header(http::header::CONNECTION, "upgrade")
        .header(http::header::UPGRADE, mover_proto::TUNNEL_UPGRADE)
        .header(header::KEY, key)
        .header(header::PROTOCOL, mover_proto::PROTOCOL_VERSION.to_string())
        .header(header::VERSION, "0.0.0-liar")
        .header(header::HOST, "liar")
        .header(header::OS, "linux 12")
        .body(Empty::new())
        .unwrap();
    if let Some(id) = lane_of {
        req.headers_mut()
            .insert(header::LANE_OF, HeaderValue::from(id));
    }
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::SWITCHING_PROTOCOLS,
        "tunnel upgrade"
    );
    let tunnel = res
        .headers()
        .get(header::TUNNEL_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let upgraded = hyper::upgrade::on(res).await.unwrap();
    tokio::spawn(async move {
        let svc = hyper::service::service_fn(move |req| answer(handler.clone(), req));
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_concurrent_streams(512)
            .serve_connection(upgraded, svc)
            .await;
    });
    tunnel
}

type Body = BoxBody<Bytes, Infallible>;

async fn answer(
    handler: Arc<Handler>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, _) = req.into_parts();
    let query = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let range = parts
        .headers
        .get(http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| {
            let (a, b) = v.split_once('-')?;
            Some((a.parse().ok()?, b.parse().ok()))
        });
    let asked = Asked {
        route: parts.uri.path().to_owned(),
        query,
        range,
    };
    let mut reply = handler(&asked).unwrap_or_else(|| default_reply(&asked));
    while let Reply::Later(pause, then) = reply {
        tokio::time::sleep(pause).await;
        reply = *then;
    }
    Ok(respond(reply))
}

fn default_reply(asked: &Asked) -> Reply {
    match asked.route.as_str() {
        "/v1/info" => Reply::Json(
            json!({"version": "0.0.0-liar", "os": "linux 12", "host": "liar", "roots": []}),
        ),
        "/v1/session" | "/v1/watch" => Reply::Json(json!({})),
        "/v1/events" => Reply::Lines(vec![json!({"event": "hello", "version": "0.0.0-liar",
            "os": "linux 12", "host": "liar", "roots": []})
        .to_string()]),
        _ => Reply::Error(404, format!("no route {}", asked.route)),
    }
}

fn respond(reply: Reply) -> Response<Body> {
    match reply {
        Reply::Json(v) => {
            let body = http_body_util::Full::new(Bytes::from(v.to_string()))
                .map_err(|e| match e {})
                .boxed();
            Response::new(body)
        }
        Reply::Error(status, message) => {
            let body =
                http_body_util::Full::new(Bytes::from(json!({ "error": message }).to_string()))
                    .map_err(|e| match e {})
                    .boxed();
            let mut res = Response::new(body);
            *res.status_mut() = StatusCode::from_u16(status).unwrap();
            res
        }
        Reply::Stream {
            status,
            headers,
            chunk,
            count,
            trailers,
        } => {
            let mut map = HeaderMap::new();
            for (k, v) in trailers {
                map.insert(
                    HeaderName::from_static(k),
                    HeaderValue::from_str(&v).unwrap(),
                );
            }
            let data = futures_util::stream::iter(0..count)
                .map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone())));
            let end = futures_util::stream::iter([Ok(Frame::trailers(map))]);
            let mut res = Response::new(BodyExt::boxed(StreamBody::new(data.chain(end))));
            *res.status_mut() = StatusCode::from_u16(status).unwrap();
            for (k, v) in headers {
                res.headers_mut().insert(
                    HeaderName::from_static(k),
                    HeaderValue::from_str(&v).unwrap(),
                );
            }
            res
        }
        Reply::Bytes {
            status,
            headers,
            body,
            trailers,
        } => respond(Reply::Stream {
            status,
            headers,
            chunk: body,
            count: 1,
            trailers,
        }),
        Reply::Flood(line, count, sent) => {
            let line = Bytes::from(format!("{line}\n"));
            let data = futures_util::stream::iter(0..count)
                .map(move |_| {
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Ok::<_, Infallible>(Frame::data(line.clone()))
                })
                .chain(futures_util::stream::pending());
            Response::new(BodyExt::boxed(StreamBody::new(data)))
        }
        Reply::Later(..) => unreachable!("unwrapped in answer"),
        Reply::Lines(lines) => {
            let data = futures_util::stream::iter(lines)
                .map(|l| Ok::<_, Infallible>(Frame::data(Bytes::from(format!("{l}\n")))))
                .chain(futures_util::stream::pending());
            Response::new(BodyExt::boxed(StreamBody::new(data)))
        }
    }
}
