//! `/api/v1/connectors`: authorize, list, rename, revoke and browse.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use http::StatusCode;
use mover_proto::api::{AuthorizeRequest, Connector, ConnectorState, FolderSize, RenameRequest};
use mover_proto::{route, BrowsePage, Entry, SessionState};
use serde::Deserialize;

use super::{ApiError, Json, Query};
use crate::agent_client::AgentClient;
use crate::raw_path::RawPath;
use crate::store::{new_id, ConnectorRow};
use crate::walk::{Filter, Target};
use crate::{key_hash, App};

fn view(row: &ConnectorRow, app: &App) -> Connector {
    let live = app.registry.by_connector(&row.id);
    let info = live.as_ref().map(|l| l.info.clone());
    Connector {
        id: row.id.clone(),
        name: row.name.clone(),
        state: if live.is_some() {
            ConnectorState::Online
        } else {
            ConnectorState::Offline
        },
        version: info
            .as_ref()
            .map(|i| i.version.clone())
            .or_else(|| row.version.clone()),
        os: info
            .as_ref()
            .map(|i| i.os.clone())
            .or_else(|| row.os.clone()),
        host: info
            .as_ref()
            .map(|i| i.host.clone())
            .or_else(|| row.host.clone()),
        roots: info.map(|i| i.roots).unwrap_or_else(|| row.roots.clone()),
        // While online, "last seen" is when the tunnel came up: it changes only on reconnects.
        last_seen: live
            .as_ref()
            .map(|l| l.since.clone())
            .or_else(|| row.last_seen.clone()),
        connections: live.as_ref().map_or(0, |l| l.client.lanes()),
    }
}

/// `GET /connectors`: authorized connectors, then tunnels waiting for authorization.
pub async fn list(State(app): State<Arc<App>>) -> Result<axum::Json<Vec<Connector>>, ApiError> {
    Ok(axum::Json(all(&app).await?))
}

/// Authorized connectors, then tunnels waiting for authorization.
pub async fn all(app: &App) -> Result<Vec<Connector>, ApiError> {
    let rows = app.store.connectors().await?;
    let mut out: Vec<Connector> = rows.iter().map(|r| view(r, app)).collect();
    let mut waiting: Vec<_> = app
        .registry
        .all()
        .into_iter()
        .filter(|l| l.connector.is_none())
        .collect();
    waiting.sort_by(|a, b| a.since.cmp(&b.since));
    out.extend(waiting.into_iter().map(|l| Connector {
        id: l.waiting_id,
        name: l.info.host.clone(),
        state: ConnectorState::Waiting,
        version: Some(l.info.version),
        os: Some(l.info.os),
        host: Some(l.info.host),
        roots: l.info.roots,
        last_seen: Some(l.since),
        connections: l.client.lanes(),
    }));
    Ok(out)
}

/// `POST /connectors {"key","name"}`: authorizes the agent presenting `key`.
pub async fn authorize(
    State(app): State<Arc<App>>,
    Json(req): Json<AuthorizeRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let key = req.key.trim().to_ascii_lowercase();
    if !crate::is_valid_key(&key) {
        return Err(ApiError::bad_request(
            "that is not a connector key: a key is 32 hexadecimal characters, as `agent status` or the app shows it",
        ));
    }
    let hash = key_hash(&key);
    let unknown = || {
        ApiError::not_found(
            "no agent is waiting with this key: check that the agent is running, connected to this Bifrost, and that the key was copied whole",
        )
    };
    if let Some(row) = app.store.connector_by_key(hash.clone()).await? {
        if row.revoked {
            return Err(unknown());
        }
        return Err(ApiError::conflict(format!(
            "this key is already authorized as {}",
            row.name
        )));
    }
    let live = app.registry.by_key(&hash).ok_or_else(unknown)?;
    let name = req
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| live.info.host.clone());
    if name.chars().count() > 200 {
        return Err(ApiError::bad_request(
            "the name is longer than 200 characters",
        ));
    }
    let id = new_id();
    app.store
        .insert_connector(id.clone(), hash.clone(), name.clone())
        .await?;
    let info = live.info.clone();
    app.store
        .touch_connector(id.clone(), info.version, info.os, info.host, info.roots)
        .await?;
    if let Some(live) = app.registry.authorize(&hash, &id) {
        // Tell the agent before answering, so a browse right after the 201 is served;
        // a stuck agent holds the admin up for at most a few seconds.
        let session = SessionState::Authorized { name: name.clone() };
        let told = tokio::time::timeout(
            Duration::from_secs(5),
            live.client.post_json(route::SESSION, &session),
        )
        .await;
        if !matches!(told, Ok(Ok(()))) {
            tracing::warn!(connector = %id, "the agent did not confirm its authorization; it learns on reconnect");
        }
    }
    tracing::info!(connector = %id, %name, "connector authorized");
    let row = app
        .store
        .connector(id)
        .await?
        .ok_or_else(|| ApiError::internal("connector vanished"))?;
    Ok((StatusCode::CREATED, axum::Json(view(&row, &app))))
}

/// `PATCH /connectors/{id} {"name"}`.
pub async fn rename(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Json(req): Json<RenameRequest>,
) -> Result<axum::Json<Connector>, ApiError> {
    let name = req.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::bad_request("a name has 1 to 200 characters"));
    }
    if !app.store.rename_connector(id.clone(), name.clone()).await? {
        return Err(ApiError::not_found(format!("no connector {id}")));
    }
    if let Some(live) = app.registry.by_connector(&id) {
        let _ = live
            .client
            .post_json(route::SESSION, &SessionState::Authorized { name })
            .await;
    }
    let row = app
        .store
        .connector(id.clone())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no connector {id}")))?;
    Ok(axum::Json(view(&row, &app)))
}

/// `DELETE /connectors/{id}`: revokes the key and drops the tunnel.
pub async fn revoke(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let hash = app.store.connector_key_hash(id.clone()).await?;
    if !app.store.revoke_connector(id.clone()).await? {
        return Err(ApiError::not_found(format!("no connector {id}")));
    }
    if let Some(hash) = hash {
        // Barred and forgotten in one step: a tunnel of this key accepted before the revocation
        // cannot register after it (an agent reconnecting in a tight loop).
        if let Some(live) = app.registry.revoke(&hash) {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                live.client
                    .post_json(route::SESSION, &SessionState::Revoked),
            )
            .await;
            live.close.send_replace(true);
        }
    }
    crate::engine::stop_connector_jobs(&app, &id).await;
    tracing::info!(connector = %id, "connector revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// A client for an authorized, online connector; 404 unknown, 409 offline or waiting.
pub async fn online_client(app: &App, id: &str) -> Result<AgentClient, ApiError> {
    if let Some(live) = app.registry.by_connector(id) {
        return Ok(live.client);
    }
    if app.registry.all().iter().any(|l| l.waiting_id == id) {
        return Err(ApiError::conflict(
            "this connector is waiting for authorization",
        ));
    }
    match app.store.connector(id.to_owned()).await? {
        Some(row) => Err(ApiError::conflict(format!(
            "connector {} is offline",
            row.name
        ))),
        None => Err(ApiError::not_found(format!("no connector {id}"))),
    }
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
    let client = online_client(&app, &id).await?;
    let path = q.raw_path()?;
    Ok(axum::Json(client.browse(&path, q.cursor.as_deref()).await?))
}

/// `GET /connectors/{id}/stat?path=P`.
pub async fn stat(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<axum::Json<Entry>, ApiError> {
    let client = online_client(&app, &id).await?;
    Ok(axum::Json(client.stat(&q.raw_path()?).await?))
}

/// `GET /connectors/{id}/size?path=P`: files, folders and bytes below a folder.
pub async fn size(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<PathQuery>,
) -> Result<axum::Json<FolderSize>, ApiError> {
    let client = online_client(&app, &id).await?;
    let source = q.raw_path()?;
    let targets = [Target {
        source,
        dest: RawPath::new("/"),
    }];
    let counter = super::count(&client, &targets, &Filter::default()).await?;
    Ok(axum::Json(FolderSize {
        files: counter.files,
        folders: counter.folders.saturating_sub(1),
        bytes: counter.bytes,
    }))
}
