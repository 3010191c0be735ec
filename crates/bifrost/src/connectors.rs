//! Connector operations: authorize, list, rename and revoke agents, reach an online one, and
//! count what lies below a folder of its.

use std::time::Duration;

use mover_proto::api::{AuthorizeRequest, Connector, ConnectorState, FolderSize};
use mover_proto::{route, SessionState};

use crate::agent_client::{AgentClient, AgentError};
use crate::raw_path::RawPath;
use crate::store::{new_id, ConnectorRow, StoreError};
use crate::walk::{walk, Counter, Filter, Target, WalkError};
use crate::{key_hash, App};

/// Longest connector name, in characters.
const MAX_NAME: usize = 200;
/// How long a count of the files below a folder may take.
const COUNT_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a connector operation failed; each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// No connector has this id.
    #[error("no connector {0}")]
    NotFound(String),
    /// No agent waits with the key given.
    #[error("no agent is waiting with this key: check that the agent is running, connected to this Bifrost, and that the key was copied whole")]
    UnknownKey,
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The request conflicts with what is recorded.
    #[error("{0}")]
    Conflict(String),
    /// The connector's agent waits for authorization.
    #[error("this connector is waiting for authorization")]
    Waiting,
    /// The connector (named here) has no tunnel up.
    #[error("connector {0} is offline")]
    Offline(String),
    /// The agent refused or failed.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// A count took longer than [`COUNT_TIMEOUT`].
    #[error("too many files to count in two minutes; choose a smaller folder")]
    TooMany,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Bifrost's own fault.
    #[error("{0}")]
    Internal(String),
}

/// The API view of an authorized connector, live or as last recorded.
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

/// Authorized connectors, then tunnels waiting for authorization.
pub async fn all(app: &App) -> Result<Vec<Connector>, ConnectorError> {
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

/// Authorizes the agent presenting `req.key`, named `req.name` or else after its host.
pub async fn authorize(app: &App, req: AuthorizeRequest) -> Result<Connector, ConnectorError> {
    let key = req.key.trim().to_ascii_lowercase();
    if !crate::is_valid_key(&key) {
        return Err(ConnectorError::Invalid(
            "that is not a connector key: a key is 32 hexadecimal characters, as `agent status` or the app shows it".into(),
        ));
    }
    let hash = key_hash(&key);
    if let Some(row) = app.store.connector_by_key(hash.clone()).await? {
        if row.revoked {
            return Err(ConnectorError::UnknownKey);
        }
        return Err(ConnectorError::Conflict(format!(
            "this key is already authorized as {}",
            row.name
        )));
    }
    let live = app
        .registry
        .by_key(&hash)
        .ok_or(ConnectorError::UnknownKey)?;
    let name = req
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| live.info.host.clone());
    if name.chars().count() > MAX_NAME {
        return Err(ConnectorError::Invalid(
            "the name is longer than 200 characters".into(),
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
        .ok_or_else(|| ConnectorError::Internal("connector vanished".into()))?;
    Ok(view(&row, app))
}

/// Renames connector `id`, and tells its agent if it is online.
pub async fn rename(app: &App, id: &str, name: &str) -> Result<Connector, ConnectorError> {
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(ConnectorError::Invalid(
            "a name has 1 to 200 characters".into(),
        ));
    }
    if !app
        .store
        .rename_connector(id.to_owned(), name.clone())
        .await?
    {
        return Err(ConnectorError::NotFound(id.to_owned()));
    }
    if let Some(live) = app.registry.by_connector(id) {
        let _ = live
            .client
            .post_json(route::SESSION, &SessionState::Authorized { name })
            .await;
    }
    let row = app
        .store
        .connector(id.to_owned())
        .await?
        .ok_or_else(|| ConnectorError::NotFound(id.to_owned()))?;
    Ok(view(&row, app))
}

/// Revokes connector `id`'s key, drops its tunnel and fails its running jobs.
pub async fn revoke(app: &App, id: &str) -> Result<(), ConnectorError> {
    let hash = app.store.connector_key_hash(id.to_owned()).await?;
    if !app.store.revoke_connector(id.to_owned()).await? {
        return Err(ConnectorError::NotFound(id.to_owned()));
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
    crate::engine::stop_connector_jobs(app, id).await;
    tracing::info!(connector = %id, "connector revoked");
    Ok(())
}

/// A client for an authorized, online connector.
pub async fn online_client(app: &App, id: &str) -> Result<AgentClient, ConnectorError> {
    if let Some(live) = app.registry.by_connector(id) {
        return Ok(live.client);
    }
    if app.registry.all().iter().any(|l| l.waiting_id == id) {
        return Err(ConnectorError::Waiting);
    }
    match app.store.connector(id.to_owned()).await? {
        Some(row) => Err(ConnectorError::Offline(row.name)),
        None => Err(ConnectorError::NotFound(id.to_owned())),
    }
}

/// Files, folders and bytes below `folder` on `client`'s agent.
pub async fn size(client: &AgentClient, folder: RawPath) -> Result<FolderSize, ConnectorError> {
    let targets = [Target {
        source: folder,
        dest: RawPath::new("/"),
    }];
    let counter = count(client, &targets, &Filter::default()).await?;
    Ok(FolderSize {
        files: counter.files,
        folders: counter.folders.saturating_sub(1),
        bytes: counter.bytes,
    })
}

/// Counts what a walk over `targets` finds, giving up after [`COUNT_TIMEOUT`].
pub async fn count(
    client: &AgentClient,
    targets: &[Target],
    filter: &Filter,
) -> Result<Counter, ConnectorError> {
    let mut counter = Counter::default();
    match tokio::time::timeout(COUNT_TIMEOUT, walk(client, targets, filter, &mut counter)).await {
        Ok(Ok(())) => Ok(counter),
        Ok(Err(WalkError::Agent(e))) => Err(e.into()),
        Ok(Err(WalkError::Store(e))) => Err(e.into()),
        Err(_) => Err(ConnectorError::TooMany),
    }
}
