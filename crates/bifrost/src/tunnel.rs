//! The tunnel endpoint: accepts an agent's upgrade and becomes the HTTP/2 client of the agent.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use mover_proto::{
    header, route, AgentEvent, AgentInfo, SessionState, PROTOCOL_VERSION, TUNNEL_UPGRADE,
};
use tokio::sync::watch;

use crate::agent_client::AgentClient;
use crate::api::ApiError;
use crate::registry::{Live, MAX_WAITING_PER_ADDR};
use crate::{key_hash, App};

static CONN_IDS: AtomicU64 = AtomicU64::new(1);

/// Extra lanes one tunnel may have (its agent opens as many as its config says, up to this).
pub const MAX_LANES: usize = mover_proto::limits::MAX_LANES;

/// The peer address of a connection, put in each request's extensions by the server.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

fn text(h: &HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

/// `GET /tunnel/v1` with `Upgrade: mover-tunnel`.
pub async fn accept(State(app): State<Arc<App>>, mut req: Request) -> Response {
    let h = req.headers();
    let peer = req
        .extensions()
        .get::<Peer>()
        .map(|p| p.0.ip())
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    if !h
        .get(http::header::UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(TUNNEL_UPGRADE.as_bytes()))
    {
        return ApiError::bad_request("the tunnel needs Upgrade: mover-tunnel").into_response();
    }
    let protocol: u32 = text(h, header::PROTOCOL).parse().unwrap_or(0);
    if protocol != PROTOCOL_VERSION {
        let which = if protocol < PROTOCOL_VERSION {
            "update the agent"
        } else {
            "update Bifrost"
        };
        let msg = format!(
            "the agent speaks protocol {protocol} and Bifrost speaks {PROTOCOL_VERSION}: {which}"
        );
        return ApiError::new(StatusCode::UPGRADE_REQUIRED, msg).into_response();
    }
    let key = text(h, header::KEY);
    if !crate::is_valid_key(&key) {
        return ApiError::bad_request("the connector key must be 32 lowercase hex characters")
            .into_response();
    }
    let hash = key_hash(&key);
    if let Some(lane_of) = h.get(header::LANE_OF) {
        let lane_of: u64 = lane_of
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        return accept_lane(app, req, hash, lane_of);
    }
    let previous = text(h, header::PREVIOUS_KEY);
    let info = AgentInfo {
        version: text(h, header::VERSION),
        os: text(h, header::OS),
        host: text(h, header::HOST),
        roots: vec![],
    };
    let known = match app.store.connector_by_key(hash.clone()).await {
        Ok(row) => row,
        Err(e) => return ApiError::internal(e).into_response(),
    };
    if known.as_ref().is_some_and(|c| c.revoked) {
        let msg = "this connector key was revoked; run `agent start --reset-key` and authorize the new key";
        return ApiError::new(StatusCode::FORBIDDEN, msg).into_response();
    }
    if crate::is_valid_key(&previous) && previous != key {
        // The agent proves it held the old key; retire it so it stops working here.
        let old = key_hash(&previous);
        if let Ok(Some(id)) = app.store.retire_key(old.clone()).await {
            tracing::info!(connector = %id, "connector key retired after --reset-key");
        }
        app.registry.close(&old);
    }
    let connector = known.map(|c| (c.id, c.name));
    let session = match &connector {
        Some((_, name)) => SessionState::Authorized { name: name.clone() },
        None => SessionState::Waiting,
    };
    if connector.is_none()
        && app.registry.by_key(&hash).is_none()
        && app.registry.waiting_from(peer) >= MAX_WAITING_PER_ADDR
    {
        let msg = format!("too many agents from {peer} are waiting for authorization");
        return ApiError::new(StatusCode::TOO_MANY_REQUESTS, msg).into_response();
    }
    let conn_id = CONN_IDS.fetch_add(1, Ordering::Relaxed);
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => run(app, upgraded, hash, info, peer, connector, conn_id).await,
            Err(e) => tracing::warn!(error = %e, "tunnel upgrade failed"),
        }
    });
    let mut res = switching();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&serde_json::to_string(&session).unwrap_or_default()) {
        h.insert(header::SESSION, v);
    }
    h.insert(header::TUNNEL_ID, HeaderValue::from(conn_id));
    h.insert(header::LANES, HeaderValue::from(MAX_LANES));
    res
}

fn switching() -> Response {
    let mut res = StatusCode::SWITCHING_PROTOCOLS.into_response();
    res.headers_mut().insert(
        http::header::CONNECTION,
        HeaderValue::from_static("upgrade"),
    );
    res.headers_mut().insert(
        http::header::UPGRADE,
        HeaderValue::from_static(TUNNEL_UPGRADE),
    );
    res
}

/// An extra lane for the authorized tunnel `lane_of` of the same key.
fn accept_lane(app: Arc<App>, mut req: Request, hash: String, lane_of: u64) -> Response {
    let Some(live) = app
        .registry
        .by_key(&hash)
        .filter(|l| l.conn_id == lane_of && l.connector.is_some())
    else {
        return ApiError::new(
            StatusCode::CONFLICT,
            "no authorized tunnel with this id for this key",
        )
        .into_response();
    };
    if live.client.lanes() > MAX_LANES {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "this tunnel has all its lanes",
        )
        .into_response();
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => run_lane(upgraded, live).await,
            Err(e) => tracing::warn!(error = %e, "lane upgrade failed"),
        }
    });
    switching()
}

/// Bifrost is the HTTP/2 client of the agent: the receiving side sets the windows, and large
/// ones keep a long link full.
fn http2() -> hyper::client::conn::http2::Builder<TokioExecutor> {
    let mut builder = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .initial_stream_window_size(16 * 1024 * 1024)
        .initial_connection_window_size(128 * 1024 * 1024)
        .max_frame_size(1024 * 1024)
        .adaptive_window(false)
        .max_concurrent_reset_streams(1024)
        .keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    builder
}

/// Serves one extra lane until it or its tunnel closes.
async fn run_lane(upgraded: hyper::upgrade::Upgraded, live: Live) {
    let (sender, conn) = match http2().handshake(upgraded).await {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(error = %e, "lane HTTP/2 handshake failed");
            return;
        }
    };
    let id = live.client.add_lane(sender);
    let mut closed = live.close.subscribe();
    tracing::debug!(tunnel = live.conn_id, lane = id, "lane up");
    tokio::select! {
        r = conn => if let Err(e) = r { tracing::debug!(error = %e, "lane closed") },
        _ = closed.wait_for(|c| *c) => {}
    }
    live.client.remove_lane(id);
    tracing::debug!(tunnel = live.conn_id, lane = id, "lane down");
}

async fn run(
    app: Arc<App>,
    upgraded: hyper::upgrade::Upgraded,
    hash: String,
    info: AgentInfo,
    peer: std::net::IpAddr,
    connector: Option<(String, String)>,
    conn_id: u64,
) {
    let (sender, conn) = match http2().handshake(upgraded).await {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(error = %e, "tunnel HTTP/2 handshake failed");
            return;
        }
    };
    let (close, mut closed) = watch::channel(false);
    let conn_task = tokio::spawn(async move {
        tokio::select! {
            r = conn => if let Err(e) = r { tracing::info!(error = %e, "tunnel closed") },
            _ = closed.wait_for(|c| *c) => {}
        }
    });
    let client = AgentClient::new(sender);
    let live = Live {
        conn_id,
        client: client.clone(),
        info: info.clone(),
        peer,
        connector: connector.as_ref().map(|c| c.0.clone()),
        waiting_id: format!("waiting-{conn_id}"),
        close: close.clone(),
        since: crate::store::now(),
    };
    if let Some(old) = app.registry.insert(hash.clone(), live) {
        tracing::info!(key = %&hash[..8], "a newer tunnel replaces the older one with the same key");
        tokio::spawn(async move {
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                old.client
                    .post_json(route::SESSION, &SessionState::Replaced),
            )
            .await;
            old.close.send_replace(true);
        });
    }
    tracing::info!(key = %&hash[..8], host = %info.host, authorized = connector.is_some(), "agent tunnel up");
    let events = tokio::spawn(follow_events(app.clone(), client, hash.clone(), conn_id));
    let _ = conn_task.await;
    // The lanes go with the tunnel.
    close.send_replace(true);
    events.abort();
    if let Some(Some(id)) = app.registry.remove(&hash, conn_id) {
        let _ = app.store.seen(id).await;
    }
    tracing::info!(key = %&hash[..8], "agent tunnel down");
}

/// Reads the agent's event stream, keeping its info current.
async fn follow_events(app: Arc<App>, client: AgentClient, hash: String, conn_id: u64) {
    let res = match client.events().await {
        Ok(res) => res,
        Err(e) => {
            tracing::warn!(error = %e, "agent event stream");
            return;
        }
    };
    let mut body = res.into_body().into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut armed = false;
    while let Some(Ok(chunk)) = body.next().await {
        buf.extend_from_slice(&chunk);
        if buf.len() > 1024 * 1024 {
            tracing::warn!("agent event line too long; closing the event stream");
            return;
        }
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Bytes = buf.drain(..=pos).collect();
            match serde_json::from_slice::<AgentEvent>(&line) {
                Ok(AgentEvent::Hello(info)) => {
                    app.registry.set_info(&hash, conn_id, info.clone());
                    if let Some(id) = app.registry.by_key(&hash).and_then(|l| l.connector) {
                        let _ = app
                            .store
                            .touch_connector(
                                id.clone(),
                                info.version,
                                info.os,
                                info.host,
                                info.roots,
                            )
                            .await;
                        // A (re)connected agent watches the kept-in-sync sources again.
                        if !armed {
                            armed = true;
                            crate::engine::arm_sync(&app, &id).await;
                        }
                    }
                }
                Ok(AgentEvent::Heartbeat) => {}
                Ok(AgentEvent::Changed { roots }) => {
                    if let Some(id) = app.registry.by_key(&hash).and_then(|l| l.connector) {
                        crate::engine::on_changed(&app, &id, roots).await;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "malformed agent event"),
            }
        }
    }
}
