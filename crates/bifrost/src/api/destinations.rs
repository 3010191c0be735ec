//! `/api/v1/destinations`: parses requests, calls `crate::destinations` and maps its errors to
//! HTTP (400 invalid, 404 unknown id, 409 in use by an unfinished job, 502 the service failed).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json as Reply;
use http::StatusCode;
use mover_proto::destinations::{
    DestinationPatch, DestinationView, Listing, NewDestination, TestResult,
};
use serde::Deserialize;

use super::{ApiError, Json, Query};
use crate::destinations::{self, DestinationError};
use crate::App;

impl From<DestinationError> for ApiError {
    fn from(e: DestinationError) -> Self {
        match e {
            DestinationError::Invalid(_) | DestinationError::Unusable(_) => {
                Self::bad_request(e.to_string())
            }
            DestinationError::Unknown(_) => Self::not_found(e.to_string()),
            DestinationError::InUse { .. } => Self::conflict(e.to_string()),
            DestinationError::Service(_) => Self::new(StatusCode::BAD_GATEWAY, e.to_string()),
            DestinationError::Seal(_) | DestinationError::Store(_) => Self::internal(e),
        }
    }
}

/// `GET /destinations`.
pub async fn list(State(app): State<Arc<App>>) -> Result<Reply<Vec<DestinationView>>, ApiError> {
    Ok(Reply(destinations::list(&app).await?))
}

/// `POST /destinations`: 201 with the destination, never its credentials.
pub async fn create(
    State(app): State<Arc<App>>,
    Json(req): Json<NewDestination>,
) -> Result<(StatusCode, Reply<DestinationView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Reply(destinations::create(&app, req).await?),
    ))
}

/// `GET /destinations/{id}`.
pub async fn get(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Reply<DestinationView>, ApiError> {
    Ok(Reply(destinations::get(&app, &id).await?))
}

/// `PATCH /destinations/{id}`.
pub async fn update(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Json(patch): Json<DestinationPatch>,
) -> Result<Reply<DestinationView>, ApiError> {
    Ok(Reply(destinations::update(&app, &id, patch).await?))
}

/// `DELETE /destinations/{id}`: 204.
pub async fn delete(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    destinations::delete(&app, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /destinations/{id}/test`: `{"ok":true}` or `{"ok":false,"error":...}`.
pub async fn test(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Reply<TestResult>, ApiError> {
    Ok(Reply(destinations::test(&app, &id).await?))
}

/// Query of browse.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowseQuery {
    #[serde(default)]
    prefix: String,
}

/// `GET /destinations/{id}/browse?prefix=P`.
pub async fn browse(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<BrowseQuery>,
) -> Result<Reply<Listing>, ApiError> {
    Ok(Reply(destinations::browse(&app, &id, &q.prefix).await?))
}
