//! Bifrost's HTTP/2 client side of a tunnel: requests to one agent.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use mover_proto::{route, ErrorBody};
use serde::de::DeserializeOwned;

use crate::raw_path::RawPath;

/// Largest JSON answer Bifrost reads from an agent (a browse page is far smaller).
const MAX_JSON_REPLY: usize = 16 * 1024 * 1024;

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
}

/// Sends requests to one agent over its tunnel; cheap to clone.
#[derive(Clone)]
pub struct AgentClient {
    sender: SendRequest<Full<Bytes>>,
}

fn query<V: AsRef<str>>(pairs: &[(&str, V)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(k, v)| (*k, v.as_ref())))
        .finish()
}

impl AgentClient {
    /// Wraps the sending half of an HTTP/2 connection.
    pub fn new(sender: SendRequest<Full<Bytes>>) -> Self {
        Self { sender }
    }

    /// Sends one request.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, AgentError> {
        let mut sender = self.sender.clone();
        sender
            .ready()
            .await
            .map_err(|e| AgentError::Transport(e.to_string()))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| AgentError::Transport(e.to_string()))
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

    /// Opens the agent's event stream.
    pub async fn events(&self) -> Result<Response<Incoming>, AgentError> {
        self.stream(Request::get(Self::uri::<&str>(route::EVENTS, &[])))
            .await
    }

    /// Sends a bodiless request whose answer is read as a stream.
    async fn stream(&self, req: http::request::Builder) -> Result<Response<Incoming>, AgentError> {
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| AgentError::Protocol(e.to_string()))?;
        let res = self.send(req).await?;
        if res.status().is_success() {
            Ok(res)
        } else {
            Err(error_from(res).await)
        }
    }
}

async fn json_body<T: DeserializeOwned>(res: Response<Incoming>) -> Result<T, AgentError> {
    if !res.status().is_success() {
        return Err(error_from(res).await);
    }
    let body = Limited::new(res.into_body(), MAX_JSON_REPLY)
        .collect()
        .await
        .map_err(|e| AgentError::Transport(e.to_string()))?
        .to_bytes();
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
