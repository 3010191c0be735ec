//! `/api/v1/connectors`: authorize, list, rename, revoke and browse, over [`crate::connectors`].

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Extension;
use http::StatusCode;
use mover_proto::api::{AuthorizeRequest, Connector, FolderSize, RenameRequest};
use mover_proto::{BrowsePage, Entry, ErrorBody};
use serde::Deserialize;

use super::audit::Audited;
use super::table::{Access, Entry as Route};
use super::{ApiError, Json, Query};
use crate::connectors::{self, ConnectorError};
use crate::raw_path::RawPath;
use crate::App;

/// The connectors routes and who may call them.
pub fn routes() -> Vec<Route> {
    use utoipa_axum::routes;
    use Access::{Operator, Viewer};
    vec![
        Route::new(Viewer, None, routes!(list)),
        Route::new(Operator, Some("connector.authorize"), routes!(authorize)),
        Route::new(Operator, Some("connector.rename"), routes!(rename)),
        Route::new(Operator, Some("connector.revoke"), routes!(revoke)),
        Route::new(Operator, None, routes!(browse)),
        Route::new(Operator, None, routes!(stat)),
        Route::new(Operator, None, routes!(size)),
    ]
}

impl From<ConnectorError> for ApiError {
    fn from(e: ConnectorError) -> Self {
        let status = match e {
            ConnectorError::NotFound(_) | ConnectorError::UnknownKey => StatusCode::NOT_FOUND,
            ConnectorError::Invalid(_) => StatusCode::BAD_REQUEST,
            ConnectorError::Conflict(_) | ConnectorError::Waiting | ConnectorError::Offline(_) => {
                StatusCode::CONFLICT
            }
            ConnectorError::TooMany => StatusCode::GATEWAY_TIMEOUT,
            ConnectorError::Agent(e) => return e.into(),
            ConnectorError::Store(e) => return e.into(),
            ConnectorError::Internal(m) => return ApiError::internal(m),
        };
        ApiError::new(status, e.to_string())
    }
}

/// `GET /connectors`: authorized connectors, then tunnels waiting for authorization.
#[utoipa::path(get, path = "/api/v1/connectors", tag = "connectors", responses((status = 200, body = Vec<Connector>)))]
pub async fn list(State(app): State<Arc<App>>) -> Result<axum::Json<Vec<Connector>>, ApiError> {
    Ok(axum::Json(connectors::all(&app).await?))
}

/// `POST /connectors {"key","name"}`: authorizes the agent presenting `key`.
#[utoipa::path(post, path = "/api/v1/connectors", tag = "connectors", request_body = AuthorizeRequest,
    responses((status = 201, body = Connector), (status = 404, body = ErrorBody, description = "no agent presents this key"),
        (status = 409, body = ErrorBody, description = "the key is authorized already")))]
pub async fn authorize(
    State(app): State<Arc<App>>,
    Json(req): Json<AuthorizeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let connector = connectors::authorize(&app, req).await?;
    let note = Audited::target(&connector.id).detail(format!("named {}", connector.name));
    Ok((StatusCode::CREATED, Extension(note), axum::Json(connector)))
}

/// `PATCH /connectors/{id} {"name"}`.
#[utoipa::path(patch, path = "/api/v1/connectors/{id}", tag = "connectors", params(("id" = String, Path, description = "The connector's id")), request_body = RenameRequest,
    responses((status = 200, body = Connector), (status = 409, body = ErrorBody, description = "the name is taken")))]
pub async fn rename(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Json(req): Json<RenameRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let connector = connectors::rename(&app, &id, &req.name).await?;
    let note = Audited::default().detail(format!("renamed to {}", connector.name));
    Ok((Extension(note), axum::Json(connector)))
}

/// `DELETE /connectors/{id}`: revokes the key and drops the tunnel.
#[utoipa::path(delete, path = "/api/v1/connectors/{id}", tag = "connectors", params(("id" = String, Path, description = "The connector's id")),
    responses((status = 204, description = "Revoked")))]
pub async fn revoke(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    connectors::revoke(&app, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of browse and stat.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PathQuery {
    /// The path on the agent's machine (give this or `path_b64`).
    #[serde(default)]
    path: Option<String>,
    /// The path's exact bytes, base64, for names that are not UTF-8.
    #[serde(default)]
    path_b64: Option<String>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    cursor: Option<String>,
}

impl PathQuery {
    fn raw_path(&self) -> Result<RawPath, ApiError> {
        match (&self.path, &self.path_b64) {
            (Some(p), None) => Ok(RawPath::new(p)),
            (None, Some(b)) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map(RawPath)
                    .map_err(|_| ApiError::bad_request("path_b64 is not base64"))
            }
            _ => Err(ApiError::bad_request(
                "give exactly one of path and path_b64",
            )),
        }
    }
}

/// `GET /connectors/{id}/browse?path=P[&cursor=C]`.
#[utoipa::path(get, path = "/api/v1/connectors/{id}/browse", tag = "connectors", params(("id" = String, Path, description = "The connector's id"), PathQuery),
    responses((status = 200, body = BrowsePage), (status = 409, body = ErrorBody, description = "the connector is offline"),
        (status = 502, body = ErrorBody, description = "the agent failed"), (status = 504, body = ErrorBody, description = "the agent is busy")))]
pub async fn browse(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<axum::Json<BrowsePage>, ApiError> {
    let client = connectors::online_client(&app, &id).await?;
    let path = q.raw_path()?;
    Ok(axum::Json(client.browse(&path, q.cursor.as_deref()).await?))
}

/// `GET /connectors/{id}/stat?path=P`.
#[utoipa::path(get, path = "/api/v1/connectors/{id}/stat", tag = "connectors", params(("id" = String, Path, description = "The connector's id"), PathQuery),
    responses((status = 200, body = Entry), (status = 409, body = ErrorBody, description = "the connector is offline"),
        (status = 502, body = ErrorBody, description = "the agent failed"), (status = 504, body = ErrorBody, description = "the agent is busy")))]
pub async fn stat(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<axum::Json<Entry>, ApiError> {
    let client = connectors::online_client(&app, &id).await?;
    Ok(axum::Json(client.stat(&q.raw_path()?).await?))
}

/// `GET /connectors/{id}/size?path=P`: files, folders and bytes below a folder.
#[utoipa::path(get, path = "/api/v1/connectors/{id}/size", tag = "connectors", params(("id" = String, Path, description = "The connector's id"), PathQuery),
    responses((status = 200, body = FolderSize), (status = 409, body = ErrorBody, description = "the connector is offline"),
        (status = 502, body = ErrorBody, description = "the agent failed"), (status = 504, body = ErrorBody, description = "the agent is busy")))]
pub async fn size(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<axum::Json<FolderSize>, ApiError> {
    let client = connectors::online_client(&app, &id).await?;
    let folder = q.raw_path()?;
    Ok(axum::Json(connectors::size(&client, folder).await?))
}
