//! Bifrost's HTTP/2 client side of a tunnel: requests to one agent.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use mover_proto::limits::{self, LimitError, MAX_PAGE_BYTES};
use mover_proto::{route, BrowsePage, Entry, ErrorBody};
use serde::de::DeserializeOwned;

use crate::raw_path::RawPath;

/// Largest JSON answer Bifrost reads from an agent: a browse page is the largest there is.
const MAX_JSON_REPLY: usize = MAX_PAGE_BYTES;

/// Why a request to an agent failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentError {
    /// The agent answered with an error status.
    #[error("{message}")]
    Status {
        /// HTTP status from the agent.
        status: StatusCode,
        /// The agent's message.
        message: String,
    },
    /// The tunnel failed mid-request.
    #[error("connection to the agent failed: {0}")]
    Transport(String),
    /// The answer was not what the protocol says.
    #[error("the agent sent a malformed answer: {0}")]
    Protocol(String),
    /// The answer broke one of the limits in `mover_proto::limits`.
    #[error("{0}")]
    Limit(#[from] LimitError),
}

/// Sends requests to one agent over its tunnel and the tunnel's extra lanes, spreading them
/// round robin; cheap to clone.
#[derive(Clone)]
pub struct AgentClient {
    lanes: std::sync::Arc<Lanes>,
}

/// The HTTP/2 connections of one tunnel: the first one (id 0) and the extra lanes.
struct Lanes {
    open: std::sync::Mutex<Vec<(u64, SendRequest<Full<Bytes>>)>>,
    next: std::sync::atomic::AtomicUsize,
    ids: std::sync::atomic::AtomicU64,
}

fn query<V: AsRef<str>>(pairs: &[(&str, V)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_ref())))
        .finish()
}

impl AgentClient {
    /// Wraps the sending half of a tunnel's first HTTP/2 connection.
    pub fn new(sender: SendRequest<Full<Bytes>>) -> Self {
        Self {
            lanes: std::sync::Arc::new(Lanes {
                open: std::sync::Mutex::new(vec![(0, sender)]),
                next: Default::default(),
                ids: std::sync::atomic::AtomicU64::new(1),
            }),
        }
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Vec<(u64, SendRequest<Full<Bytes>>)>> {
        self.lanes.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an extra lane; returns its id for [`AgentClient::remove_lane`].
    pub fn add_lane(&self, sender: SendRequest<Full<Bytes>>) -> u64 {
        let id = self
            .lanes
            .ids
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.open().push((id, sender));
        id
    }

    /// Forgets a lane that closed.
    pub fn remove_lane(&self, id: u64) {
        self.open().retain(|(i, _)| *i != id);
    }

    /// Open connections, the first one included.
    pub fn lanes(&self) -> usize {
        self.open().len()
    }

    /// Sends one request on the next lane that is ready; a lane that has closed is skipped
    /// (and forgotten), so losing one costs only the requests that were on it.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, AgentError> {
        let candidates: Vec<_> = {
            let open = self.open();
            let start = self
                .lanes
                .next
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            (0..open.len())
                .map(|i| open[(start + i) % open.len()].clone())
                .collect()
        };
        let mut last = "the tunnel is closed".to_owned();
        for (id, mut sender) in candidates {
            match sender.ready().await {
                Ok(()) => {
                    return sender
                        .send_request(req)
                        .await
                        .map_err(|e| AgentError::Transport(e.to_string()))
                }
                Err(e) => {
                    last = e.to_string();
                    if id != 0 {
                        self.remove_lane(id);
                    }
                }
            }
        }
        Err(AgentError::Transport(last))
    }

    fn uri<V: AsRef<str>>(path: &str, pairs: &[(&str, V)]) -> String {
        if pairs.is_empty() {
            format!("http://agent{path}")
        } else {
            format!("http://agent{path}?{}", query(pairs))
        }
    }

    /// `GET` a JSON route.
    pub async fn get_json<T: DeserializeOwned, V: AsRef<str>>(
        &self,
        path: &str,
        pairs: &[(&str, V)],
    ) -> Result<T, AgentError> {
        let req = Request::get(Self::uri(path, pairs))
            .body(Full::new(Bytes::new()))
            .map_err(|e| AgentError::Protocol(e.to_string()))?;
        let res = self.send(req).await?;
        json_body(res).await
    }

    /// One page of a folder, checked against the limits before it is used: entries, bytes,
    /// name lengths and the cursor.
    pub async fn browse(
        &self,
        path: &RawPath,
        cursor: Option<&str>,
    ) -> Result<BrowsePage, AgentError> {
        let mut pairs = vec![path.query_pair()];
        if let Some(c) = cursor {
            pairs.push(("cursor", c.to_owned()));
        }
        let page: BrowsePage = self.get_json(route::BROWSE, &pairs).await?;
        check_page(&page)?;
        Ok(page)
    }

    /// What the agent says is at `path`, its size checked.
    pub async fn stat(&self, path: &RawPath) -> Result<Entry, AgentError> {
        let entry: Entry = self.get_json(route::STAT, &[path.query_pair()]).await?;
        check_entry(&entry)?;
        Ok(entry)
    }

    /// `POST` a JSON body.
    pub async fn post_json<B: serde::Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(), AgentError> {
        let body = serde_json::to_vec(body).map_err(|e| AgentError::Protocol(e.to_string()))?;
        let req = Request::post(Self::uri::<&str>(path, &[]))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| AgentError::Protocol(e.to_string()))?;
        let res = self.send(req).await?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(error_from(res).await)
        }
    }

    /// Starts reading a file from `offset`.
    pub async fn read(
        &self,
        path: &RawPath,
        offset: u64,
        rate: Option<u64>,
    ) -> Result<Response<Incoming>, AgentError> {
        let mut query = vec![path.query_pair()];
        if let Some(r) = rate {
            query.push(("rate", r.to_string()));
        }
        let mut req = Request::get(Self::uri(route::READ, &query));
        if offset > 0 {
            req = req.header(http::header::RANGE, format!("bytes={offset}-"));
        }
        self.stream(req).await
    }

    /// Reads `len` bytes from `start`, a subtree of the file's BLAKE3 tree: the answer's
    /// trailer carries the part's chaining value.
    pub async fn read_part(
        &self,
        path: &RawPath,
        start: u64,
        len: u64,
    ) -> Result<Response<Incoming>, AgentError> {
        let query = vec![path.query_pair(), ("subtree", "1".to_owned())];
        let last = start + len.saturating_sub(1);
        let req = Request::get(Self::uri(route::READ, &query))
            .header(http::header::RANGE, format!("bytes={start}-{last}"));
        self.stream(req).await
    }

    /// Asks for several small files whole in one answer (see `mover_proto::many`).
    pub async fn read_many(
        &self,
        request: &mover_proto::many::ReadMany,
    ) -> Result<Response<Incoming>, AgentError> {
        let body = serde_json::to_vec(request).map_err(|e| AgentError::Protocol(e.to_string()))?;
        let req = Request::post(Self::uri::<&str>(route::READ_MANY, &[]))
            .header(http::header::CONTENT_TYPE, "application/json");
        self.stream_with(req, Bytes::from(body)).await
    }

    /// Opens the agent's event stream.
    pub async fn events(&self) -> Result<Response<Incoming>, AgentError> {
        self.stream(Request::get(Self::uri::<&str>(route::EVENTS, &[])))
            .await
    }

    /// Sends a bodiless request whose answer is read as a stream.
    async fn stream(&self, req: http::request::Builder) -> Result<Response<Incoming>, AgentError> {
        self.stream_with(req, Bytes::new()).await
    }

    /// Sends a request whose answer is read as a stream.
    async fn stream_with(
        &self,
        req: http::request::Builder,
        body: Bytes,
    ) -> Result<Response<Incoming>, AgentError> {
        let req = req
            .body(Full::new(body))
            .map_err(|e| AgentError::Protocol(e.to_string()))?;
        let res = self.send(req).await?;
        if res.status().is_success() {
            Ok(res)
        } else {
            Err(error_from(res).await)
        }
    }
}

/// Checks a browse page against the limits (its bytes were bounded as it was read).
pub fn check_page(page: &BrowsePage) -> Result<(), LimitError> {
    if page.entries.len() > limits::MAX_PAGE_ENTRIES {
        return Err(LimitError::PageEntries(page.entries.len()));
    }
    if let Some(c) = &page.next_cursor {
        if c.len() > limits::MAX_CURSOR_BYTES {
            return Err(LimitError::CursorBytes(c.len()));
        }
    }
    page.entries.iter().try_for_each(check_entry)
}

/// Checks one entry's name and size; a name's exact bytes are at most 3/4 of its base64.
fn check_entry(e: &Entry) -> Result<(), LimitError> {
    limits::name(e.name.as_bytes())?;
    if let Some(b64) = &e.name_b64 {
        if b64.len() / 4 * 3 > limits::MAX_NAME_BYTES {
            return Err(LimitError::NameBytes(b64.len() / 4 * 3));
        }
    }
    limits::file_size(e.size)?;
    Ok(())
}

async fn json_body<T: DeserializeOwned>(res: Response<Incoming>) -> Result<T, AgentError> {
    if !res.status().is_success() {
        return Err(error_from(res).await);
    }
    let body = match Limited::new(res.into_body(), MAX_JSON_REPLY)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(LimitError::PageBytes.into())
        }
        Err(e) => return Err(AgentError::Transport(e.to_string())),
    };
    serde_json::from_slice(&body).map_err(|e| AgentError::Protocol(e.to_string()))
}

async fn error_from(res: Response<Incoming>) -> AgentError {
    let status = res.status();
    let body = Limited::new(res.into_body(), 64 * 1024)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let message = serde_json::from_slice::<ErrorBody>(&body)
        .map(|b| b.error)
        .unwrap_or_else(|_| format!("agent answered {status}"));
    AgentError::Status { status, message }
}
