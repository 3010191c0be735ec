//! The agent's side of the reversed HTTP/2 connection: the routes Bifrost calls.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, Limited};
use mover_proto::{
    header, route, AgentEvent, AgentInfo, ErrorBody, SessionState, MAX_REQUEST_BODY,
};
use tokio::sync::{broadcast, mpsc, watch};

use crate::fsops::{self, Listings, ReadEnd};
use crate::paths::{PathError, Shares};
use crate::status::Activity;

/// Response body type of every route.
pub type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// What every tunnel shares: shares, listings and the activity feed.
pub struct Shared {
    /// Current shares (replaced when the config changes).
    pub shares: watch::Receiver<Arc<Shares>>,
    /// Open listings for paging.
    pub listings: Listings,
    /// Activity feed.
    pub activity: broadcast::Sender<Activity>,
    /// Version, OS and host.
    pub version: String,
    /// OS and version.
    pub os: String,
    /// Host name.
    pub host: String,
    /// Reads being served right now (no self-update while this is above zero).
    pub reads: Arc<std::sync::atomic::AtomicUsize>,
    /// Bytes of file content sent since start.
    pub sent: Arc<std::sync::atomic::AtomicU64>,
    /// Folders watched for live delta.
    pub delta: crate::delta::Delta,
    /// The agent is stopping: new reads are refused while those in flight finish.
    pub draining: std::sync::atomic::AtomicBool,
}

/// Reads up to this size are done in place (see `read`).
const SMALL_READ: u64 = 4 * fsops::READ_CHUNK as u64;

/// Counts one read as in flight until dropped.
pub(crate) struct ReadGuard(Arc<std::sync::atomic::AtomicUsize>);

impl ReadGuard {
    pub(crate) fn new(counter: &Arc<std::sync::atomic::AtomicUsize>) -> Self {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Shared {
    /// The info Bifrost sees.
    pub fn info(&self) -> AgentInfo {
        AgentInfo {
            version: self.version.clone(),
            os: self.os.clone(),
            host: self.host.clone(),
            roots: self.shares.borrow().roots(),
        }
    }
}

/// One tunnel's view: the shared state plus this tunnel's session.
#[derive(Clone)]
pub struct Tunnel {
    /// Shared state.
    pub shared: Arc<Shared>,
    /// What Bifrost last said about this tunnel.
    pub session: watch::Sender<SessionState>,
}

/// Answers one request from Bifrost; never fails the connection.
pub async fn handle(
    tunnel: Tunnel,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let res = match (req.method(), path.as_str()) {
        (&Method::GET, route::INFO) => json(StatusCode::OK, &tunnel.shared.info()),
        (&Method::POST, route::SESSION) => session(&tunnel, req).await,
        (&Method::GET, route::EVENTS) => events(&tunnel),
        (&Method::POST, route::WATCH) => match refusal(&tunnel, false) {
            Some(refused) => refused,
            None => watch(&tunnel, req).await,
        },
        (&Method::POST, route::READ_MANY) => match refusal(&tunnel, true) {
            Some(refused) => refused,
            None => read_many(&tunnel.shared, req).await,
        },
        (&Method::GET, route::BROWSE | route::STAT | route::READ | route::HASH) => {
            match refusal(&tunnel, path == route::READ) {
                Some(refused) => refused,
                None => {
                    let range = req.headers().get(http::header::RANGE).cloned();
                    files(&tunnel.shared, &path, &query, range).await
                }
            }
        }
        _ => error(
            StatusCode::NOT_FOUND,
            &format!("no route {} {path}", req.method()),
        ),
    };
    Ok(res)
}

/// Why a route that needs an authorized tunnel (and, for reads, an agent not stopping) is
/// refused; `None` when it may go ahead.
fn refusal(tunnel: &Tunnel, reads: bool) -> Option<Response<Body>> {
    if !matches!(*tunnel.session.borrow(), SessionState::Authorized { .. }) {
        return Some(error(
            StatusCode::FORBIDDEN,
            "this connector is not authorized at Bifrost",
        ));
    }
    let stopping = tunnel
        .shared
        .draining
        .load(std::sync::atomic::Ordering::SeqCst);
    (reads && stopping).then(|| error(StatusCode::SERVICE_UNAVAILABLE, "the agent is stopping"))
}

/// A request's JSON body, or the error answer saying why it cannot be read as `what`.
async fn json_body<T: serde::de::DeserializeOwned>(
    req: Request<hyper::body::Incoming>,
    what: &str,
) -> Result<T, Response<Body>> {
    let body = Limited::new(req.into_body(), MAX_REQUEST_BODY)
        .collect()
        .await
        .map_err(|_| error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"))?
        .to_bytes();
    serde_json::from_slice(&body)
        .map_err(|e| error(StatusCode::BAD_REQUEST, &format!("malformed {what}: {e}")))
}

async fn session(tunnel: &Tunnel, req: Request<hyper::body::Incoming>) -> Response<Body> {
    match json_body::<SessionState>(req, "session state").await {
        Ok(state) => {
            tunnel.session.send_replace(state);
            Response::new(empty())
        }
        Err(res) => res,
    }
}

async fn watch(tunnel: &Tunnel, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let request = match json_body::<mover_proto::Watch>(req, "watch request").await {
        Ok(w) => w,
        Err(res) => return res,
    };
    let shares = tunnel.shared.shares.borrow().clone();
    match tunnel.shared.delta.watch(&shares, request.roots) {
        Ok(n) => json(StatusCode::OK, &serde_json::json!({ "watching": n })),
        Err(e) => error(StatusCode::FORBIDDEN, &e),
    }
}

async fn read_many(shared: &Arc<Shared>, req: Request<hyper::body::Incoming>) -> Response<Body> {
    let request = match json_body::<mover_proto::many::ReadMany>(req, "read-many request").await {
        Ok(r) => r,
        Err(res) => return res,
    };
    if let Err(e) = crate::many::check(&request) {
        return error(StatusCode::BAD_REQUEST, &e);
    }
    // Two frames of up to 256 KiB each waiting per request (16 run at once) keep the link busy
    // without holding much memory.
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(2);
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || crate::many::serve(&shared, request, &tx));
    let mut res = Response::new(ChannelBody(rx).boxed());
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    res
}

fn events(tunnel: &Tunnel) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(8);
    let shared = tunnel.shared.clone();
    tokio::spawn(async move {
        let mut shares = shared.shares.clone();
        let mut changes = shared.delta.changes.subscribe();
        let mut beat = tokio::time::interval(Duration::from_secs(15));
        let mut event = AgentEvent::Hello(shared.info());
        loop {
            let mut line = serde_json::to_vec(&event).unwrap_or_default();
            line.push(b'\n');
            if tx.send(Ok(Frame::data(Bytes::from(line)))).await.is_err() {
                return;
            }
            tokio::select! {
                _ = beat.tick() => event = AgentEvent::Heartbeat,
                changed = shares.changed() => {
                    if changed.is_err() { return; }
                    event = AgentEvent::Hello(shared.info());
                }
                roots = changes.recv() => match roots {
                    Ok(roots) => event = AgentEvent::Changed { roots },
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => event = AgentEvent::Heartbeat,
                    Err(_) => return,
                },
                _ = tx.closed() => return,
            }
        }
    });
    let mut res = Response::new(ChannelBody(rx).boxed());
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    res
}

async fn files(
    shared: &Arc<Shared>,
    route_path: &str,
    query: &str,
    range: Option<HeaderValue>,
) -> Response<Body> {
    let mut path = None;
    let mut cursor = None;
    let mut rate = None;
    let mut subtree = false;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "path" => path = Some(Ok(std::path::PathBuf::from(v.into_owned()))),
            "path_b64" => path = Some(crate::paths::from_b64(&v)),
            "cursor" => cursor = Some(v.into_owned()),
            "subtree" => subtree = v == "1",
            "rate" => match v.parse::<u64>() {
                Ok(r) if r > 0 => rate = Some(r),
                _ => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        &format!("rate must be a positive number of bytes per second, not {v:?}"),
                    )
                }
            },
            _ => {}
        }
    }
    let raw = match path {
        Some(Ok(p)) => p,
        Some(Err(e)) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
        None => return error(StatusCode::BAD_REQUEST, "missing path parameter"),
    };
    let path = raw.display().to_string();
    if let Some(res) = drive_listing(shared, route_path, &path) {
        return res;
    }
    let shares = shared.shares.borrow().clone();
    let shared = shared.clone();
    let route_path = route_path.to_owned();
    let work = tokio::task::spawn_blocking(move || -> Result<Response<Body>, PathError> {
        let real = shares.resolve(&raw)?;
        match route_path.as_str() {
            route::STAT => Ok(json(StatusCode::OK, &fsops::stat(&real, &path)?)),
            route::HASH => {
                tracing::info!(path = %path, "hash");
                match fsops::hash_file(fsops::open_file(&real, &path, shares.resolution())?) {
                    Ok(Some(h)) => Ok(json(StatusCode::OK, &h)),
                    Ok(None) => Ok(error(StatusCode::CONFLICT, "changed during copy")),
                    Err(e) => Err(PathError::from_io(&path, &e)),
                }
            }
            route::BROWSE => {
                let page = shared.listings.page(&real, &path, cursor.as_deref())?;
                if cursor.is_none() {
                    let _ = shared
                        .activity
                        .send(Activity::Browse { path: path.clone() });
                }
                Ok(json(StatusCode::OK, &page))
            }
            _ => {
                let open = fsops::open_file(&real, &path, shares.resolution())?;
                read(&shared, open, &path, range, rate, subtree)
            }
        }
    });
    match work.await {
        Ok(Ok(res)) => res,
        Ok(Err(e)) => path_error(&e),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("agent task failed: {e}"),
        ),
    }
}

/// Without shares on Windows, `/` lists the drive letters the user can see.
fn drive_listing(shared: &Shared, route_path: &str, path: &str) -> Option<Response<Body>> {
    if !cfg!(windows) || route_path != route::BROWSE || !(path == "/" || path == "\\") {
        return None;
    }
    if shared.shares.borrow().is_restricted() {
        return None;
    }
    let entries = (b'A'..=b'Z')
        .map(|l| format!("{}:\\", l as char))
        .filter(|d| std::path::Path::new(d).exists())
        .map(|name| mover_proto::Entry {
            name,
            name_b64: None,
            kind: mover_proto::EntryKind::Dir,
            size: 0,
            modified: None,
        })
        .collect();
    let _ = shared.activity.send(Activity::Browse {
        path: path.to_owned(),
    });
    Some(json(
        StatusCode::OK,
        &mover_proto::BrowsePage {
            entries,
            next_cursor: None,
        },
    ))
}

fn read(
    shared: &Shared,
    open: fsops::OpenFile,
    shown: &str,
    range: Option<HeaderValue>,
    rate: Option<u64>,
    subtree: bool,
) -> Result<Response<Body>, PathError> {
    let size = open.size;
    let (start, end) = match range
        .as_ref()
        .map(|r| parse_range(r.to_str().unwrap_or_default(), size))
    {
        None => (0, size),
        Some(Some(r)) => r,
        Some(None) => {
            let mut res = error(
                StatusCode::RANGE_NOT_SATISFIABLE,
                &format!("range not satisfiable for a file of {size} bytes"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                res.headers_mut().insert(http::header::CONTENT_RANGE, v);
            }
            return Ok(res);
        }
    };
    if subtree && (rate.is_some() || !fsops::is_subtree(start, end - start, size)) {
        return Ok(error(
            StatusCode::BAD_REQUEST,
            &format!(
                "bytes {start}-{end} of {size} are not a BLAKE3 subtree (or a rate was given)"
            ),
        ));
    }
    // One line per file: the parts of a file read in parallel are one upload.
    if start == 0 || !subtree {
        let _ = shared.activity.send(Activity::Upload {
            path: shown.to_owned(),
        });
    }
    tracing::info!(path = %shown, start, end, rate, subtree, "read");
    let modified = open.modified.and_then(fsops::rfc3339);
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(8);
    let guard = ReadGuard::new(&shared.reads);
    let sent = shared.sent.clone();
    let stream = move || {
        let _guard = guard;
        let data_tx = tx.clone();
        let send = |b: Bytes| {
            let n = b.len() as u64;
            let ok = data_tx.blocking_send(Ok(Frame::data(b))).is_ok();
            if ok {
                sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
            ok
        };
        let result = if subtree {
            fsops::stream_subtree(open, start, end - start, send)
        } else {
            fsops::stream_file(open, start, end - start, rate, send)
        };
        let mut trailers = HeaderMap::new();
        match result {
            Ok(None) => return,
            Ok(Some(ReadEnd::Complete(Some(hash)))) => {
                trailers.insert(header::BLAKE3, hv(&hash.to_hex()));
            }
            Ok(Some(ReadEnd::Complete(None))) => {}
            Ok(Some(ReadEnd::Subtree(cv))) => {
                let hex: String = cv.iter().map(|b| format!("{b:02x}")).collect();
                trailers.insert(header::SUBTREE_CV, hv(&hex));
            }
            Ok(Some(ReadEnd::Changed)) => {
                trailers.insert(
                    header::READ_ERROR,
                    HeaderValue::from_static("changed during copy"),
                );
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
        let _ = tx.blocking_send(Ok(Frame::trailers(trailers)));
    };
    // This already runs on a blocking thread. A small read fits the channel whole (at most
    // four chunks and the trailers), so it is done right here: handing each small file to
    // another thread cost more than reading it.
    if end - start <= SMALL_READ {
        stream();
    } else {
        tokio::task::spawn_blocking(stream);
    }
    let partial = start > 0 || end < size;
    let mut res = Response::new(ChannelBody(rx).boxed());
    *res.status_mut() = if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let h = res.headers_mut();
    h.insert(http::header::CONTENT_LENGTH, hv(&(end - start).to_string()));
    h.insert(header::SIZE, hv(&size.to_string()));
    if let Some(m) = modified {
        h.insert(header::MODIFIED, hv(&m));
    }
    if partial {
        h.insert(
            http::header::CONTENT_RANGE,
            hv(&format!("bytes {start}-{}/{size}", end.saturating_sub(1))),
        );
    }
    Ok(res)
}

/// Parses `bytes=N-` or `bytes=N-M` into a half-open range; `None` when unsatisfiable.
fn parse_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let end = match b.trim() {
        "" => size,
        b => b.parse::<u64>().ok()?.checked_add(1)?.min(size),
    };
    (start < end || (start == 0 && size == 0)).then_some((start, end))
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn empty() -> Body {
    Full::new(Bytes::new())
        .map_err(|never| match never {})
        .boxed()
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut res = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(
        status,
        &ErrorBody {
            error: message.to_owned(),
        },
    )
}

fn path_error(e: &PathError) -> Response<Body> {
    error(
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_string(),
    )
}

/// A response body fed by a channel, so a blocking reader can run ahead of the network.
struct ChannelBody(mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-", 10), Some((0, 10)));
        assert_eq!(parse_range("bytes=4-", 10), Some((4, 10)));
        assert_eq!(parse_range("bytes=4-5", 10), Some((4, 6)));
        assert_eq!(parse_range("bytes=4-99", 10), Some((4, 10)));
        assert_eq!(parse_range("bytes=10-", 10), None);
        assert_eq!(parse_range("bytes=0-", 0), Some((0, 0)));
        assert_eq!(parse_range("items=0-", 10), None);
        assert_eq!(parse_range("bytes=-5", 10), None);
    }
}
