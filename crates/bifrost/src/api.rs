//! The JSON API under `/api/v1`: routing, sign-in checks, errors and the JSON extractor.

pub mod audit;
pub mod auth;
mod connectors;
mod destinations;
mod events;
mod jobs;
mod session;
mod settings;
pub mod table;
mod tokens;
pub mod wrong_token;

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use http::StatusCode;
use mover_proto::ErrorBody;

use crate::App;

/// An API error: a status and a readable message, sent as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error with this status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    /// What went wrong, as the API says it.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 500, for Bifrost's own faults; the detail goes to the log.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Bifrost failed: {e}"),
        )
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::internal(e)
    }
}

impl From<crate::agent_client::AgentError> for ApiError {
    fn from(e: crate::agent_client::AgentError) -> Self {
        use crate::agent_client::AgentError;
        match e {
            // The agent's own verdict on a path passes through: 403 refused, 404 missing, 400 bad.
            AgentError::Status { status, message } if status.is_client_error() => {
                Self::new(status, message)
            }
            AgentError::Status { message, .. } => Self::new(
                StatusCode::BAD_GATEWAY,
                format!("the agent failed: {message}"),
            ),
            AgentError::Transport(m) => Self::conflict(format!("the agent went offline: {m}")),
            AgentError::Protocol(m) => Self::new(
                StatusCode::BAD_GATEWAY,
                format!("the agent sent a malformed answer: {m}"),
            ),
            AgentError::Limit(e) => Self::new(StatusCode::BAD_GATEWAY, e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

/// JSON body extractor whose rejections are `400 {"error": ...}`.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(e) => Err(ApiError::bad_request(format!(
                "malformed request: {}",
                e.body_text()
            ))),
        }
    }
}

/// Query extractor whose rejections are `400 {"error": ...}`.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(e) => Err(ApiError::bad_request(format!(
                "malformed query: {}",
                e.body_text()
            ))),
        }
    }
}

/// Every route Bifrost serves on its one port.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(mover_proto::TUNNEL_PATH, get(crate::tunnel::accept))
        .merge(table::router(app.clone()))
        // The table's routes win over this one: what is left of `/api/v1` answers JSON, not
        // the console's page.
        .route(
            "/api/v1/{*rest}",
            any(|| async { ApiError::not_found("no such API endpoint") }),
        )
        .route("/updates/{name}", get(crate::releases::serve))
        .merge(crate::console::router())
        .with_state(app)
}
