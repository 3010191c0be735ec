//! Prometheus metrics at `/metrics`: what Bifrost has copied and failed, and what it is doing now.
//!
//! File counters are tallied where the database records a file's result, so they agree with
//! the job reports; they count from this process's start, as Prometheus counters do. Failed
//! files are counted by the kind their failure carries (`failure::CopyError::kind`), never by
//! their reason's words.

mod counters;
mod render;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};

pub use counters::{DestinationRequests, Tally};
pub use render::render;

use crate::App;

/// One job's live meter, shared by its copy tasks.
pub struct Meter {
    /// Bytes of files in flight (counted into progress, not yet done).
    pub inflight: AtomicU64,
    /// Files being copied now.
    pub active: AtomicU64,
    /// Bytes received from the agent since the job started running here.
    pub received: AtomicU64,
    /// When the job started running here.
    pub since: std::time::Instant,
}

impl Default for Meter {
    fn default() -> Self {
        Self {
            inflight: AtomicU64::new(0),
            active: AtomicU64::new(0),
            received: AtomicU64::new(0),
            since: std::time::Instant::now(),
        }
    }
}

/// `GET /metrics`: the `metrics` role (a Prometheus token) or an admin.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn handler(State(app): State<Arc<App>>) -> Response {
    match render(&app).await {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the database: {e}\n"),
        )
            .into_response(),
    }
}
