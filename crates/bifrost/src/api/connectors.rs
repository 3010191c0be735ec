//! `/api/v1/connectors`: authorize, list, rename, revoke and browse, over [`crate::connectors`].

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use http::StatusCode;
use mover_proto::api::{AuthorizeRequest, Connector, FolderSize, RenameRequest};
use mover_proto::{BrowsePage, Entry};
use serde::Deserialize;

use super::{ApiError, Json, Query};
use crate::connectors::{self, ConnectorError};
use crate::raw_path::RawPath;
use crate::App;

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
pub async fn list(State(app): State<Arc<App>>) -> Result<axum::Json<Vec<Connector>>, ApiError> {
    Ok(axum::Json(connectors::all(&app).await?))
}

/// `POST /connectors {"key","name"}`: authorizes the agent presenting `key`.
pub async fn authorize(
    State(app): State<Arc<App>>,
    Json(req): Json<AuthorizeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let connector = connectors::authorize(&app, req).await?;
    Ok((StatusCode::CREATED, axum::Json(connector)))
}

/// `PATCH /connectors/{id} {"name"}`.
pub async fn rename(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Json(req): Json<RenameRequest>,
) -> Result<axum::Json<Connector>, ApiError> {
    Ok(axum::Json(connectors::rename(&app, &id, &req.name).await?))
}

/// `DELETE /connectors/{id}`: revokes the key and drops the tunnel.
pub async fn revoke(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    connectors::revoke(&app, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Query of browse and stat.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathQuery {
    #[serde(default)]
    path: Option<String>,
    /// The path's exact bytes, base64, for names that are not UTF-8.
    #[serde(default)]
    path_b64: Option<String>,
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
pub async fn stat(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<axum::Json<Entry>, ApiError> {
    let client = connectors::online_client(&app, &id).await?;
    Ok(axum::Json(client.stat(&q.raw_path()?).await?))
}

/// `GET /connectors/{id}/size?path=P`: files, folders and bytes below a folder.
pub async fn size(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<axum::Json<FolderSize>, ApiError> {
    let client = connectors::online_client(&app, &id).await?;
    let folder = q.raw_path()?;
    Ok(axum::Json(connectors::size(&client, folder).await?))
}
