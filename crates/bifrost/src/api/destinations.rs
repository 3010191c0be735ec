//! `/api/v1/destinations`: parses requests, calls `crate::destinations` and maps its errors to
//! HTTP (400 invalid, 404 unknown id, 409 in use by an unfinished job, 502 the service failed).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::{Extension, Json as Reply};
use http::StatusCode;
use mover_proto::destinations::{
    DestinationPatch, DestinationView, Listing, NewDestination, TestResult,
};
use mover_proto::ErrorBody;
use serde::Deserialize;

use super::audit::Audited;
use super::table::{Access, Entry};
use super::{ApiError, Json, Query};
use crate::destinations::{self, DestinationError};
use crate::App;

/// The destinations routes and who may call them. Test and browse reach the service with the
/// stored credentials, which is an operator's work while choosing where a job goes.
pub fn routes() -> Vec<Entry> {
    use utoipa_axum::routes;
    use Access::{Admin, Operator, Viewer};
    vec![
        Entry::new(Viewer, None, routes!(list)),
        Entry::new(Admin, Some("destination.create"), routes!(create)),
        Entry::new(Viewer, None, routes!(get)),
        Entry::new(Admin, Some("destination.edit"), routes!(update)),
        Entry::new(Admin, Some("destination.delete"), routes!(delete)),
        Entry::new(Operator, None, routes!(test)),
        Entry::new(Operator, None, routes!(browse)),
    ]
}

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
#[utoipa::path(get, path = "/api/v1/destinations", tag = "destinations", responses((status = 200, body = Vec<DestinationView>)))]
pub async fn list(State(app): State<Arc<App>>) -> Result<Reply<Vec<DestinationView>>, ApiError> {
    Ok(Reply(destinations::list(&app).await?))
}

/// `POST /destinations`: 201 with the destination, never its credentials.
#[utoipa::path(post, path = "/api/v1/destinations", tag = "destinations", request_body = NewDestination,
    responses((status = 201, body = DestinationView), (status = 409, body = ErrorBody, description = "the name is taken")))]
pub async fn create(
    State(app): State<Arc<App>>,
    Json(req): Json<NewDestination>,
) -> Result<impl IntoResponse, ApiError> {
    let d = destinations::create(&app, req).await?;
    let note = Audited::target(&d.id).detail(format!("{} {}", d.kind.as_str(), d.name));
    Ok((StatusCode::CREATED, Extension(note), Reply(d)))
}

/// `GET /destinations/{id}`.
#[utoipa::path(get, path = "/api/v1/destinations/{id}", tag = "destinations", params(("id" = String, Path, description = "The destination's id")), responses((status = 200, body = DestinationView)))]
pub async fn get(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Reply<DestinationView>, ApiError> {
    Ok(Reply(destinations::get(&app, &id).await?))
}

/// `PATCH /destinations/{id}`.
#[utoipa::path(patch, path = "/api/v1/destinations/{id}", tag = "destinations", params(("id" = String, Path, description = "The destination's id")), request_body = DestinationPatch,
    responses((status = 200, body = DestinationView), (status = 409, body = ErrorBody, description = "in use by an unfinished job, or the name is taken")))]
pub async fn update(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Json(patch): Json<DestinationPatch>,
) -> Result<impl IntoResponse, ApiError> {
    let changed = changed_fields(&patch);
    let d = destinations::update(&app, &id, patch).await?;
    let note = Audited::default().detail(format!("changed {changed}"));
    Ok((Extension(note), Reply(d)))
}

/// The names of the fields a patch sets (never their values: some are credentials).
fn changed_fields(patch: &DestinationPatch) -> String {
    let fields = serde_json::to_value(patch).unwrap_or_default();
    let names: Vec<&str> = fields
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(", ")
    }
}

/// `DELETE /destinations/{id}`: 204.
#[utoipa::path(delete, path = "/api/v1/destinations/{id}", tag = "destinations", params(("id" = String, Path, description = "The destination's id")),
    responses((status = 204, description = "Deleted"), (status = 409, body = ErrorBody, description = "in use by an unfinished job")))]
pub async fn delete(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    destinations::delete(&app, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /destinations/{id}/test`: `{"ok":true}` or `{"ok":false,"error":...}`.
#[utoipa::path(post, path = "/api/v1/destinations/{id}/test", tags = ["destinations", "outbound"], params(("id" = String, Path, description = "The destination's id")),
    responses((status = 200, body = TestResult)))]
pub async fn test(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Reply<TestResult>, ApiError> {
    Ok(Reply(destinations::test(&app, &id).await?))
}

/// Query of browse.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BrowseQuery {
    /// List below this key prefix.
    #[serde(default)]
    prefix: String,
}

/// `GET /destinations/{id}/browse?prefix=P`.
#[utoipa::path(get, path = "/api/v1/destinations/{id}/browse", tags = ["destinations", "outbound"], params(("id" = String, Path, description = "The destination's id"), BrowseQuery),
    responses((status = 200, body = Listing), (status = 502, body = ErrorBody, description = "the service failed")))]
pub async fn browse(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<BrowseQuery>,
) -> Result<Reply<Listing>, ApiError> {
    Ok(Reply(destinations::browse(&app, &id, &q.prefix).await?))
}
