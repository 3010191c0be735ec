//! The tunnel endpoint: accepts an agent's upgrade and becomes the HTTP/2 client of the agent.
//! Everything an unauthorized upgrade may cost (a waiting place, a retired key) is decided
//! before the `101`.

mod events;
mod throttle;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use mover_proto::limits::{MAX_INFO_CHARS, WAITING_TIMEOUT_SECS};
use mover_proto::{header, route, AgentInfo, SessionState, PROTOCOL_VERSION, TUNNEL_UPGRADE};
use tokio::sync::watch;

use crate::agent_client::AgentClient;
use crate::api::ApiError;
use crate::gate::Pass;
use crate::registry::{LaneSlot, Live, Reservation, WaitingFull};
use crate::{key_hash, App};

static CONN_IDS: AtomicU64 = AtomicU64::new(1);

/// Extra lanes one tunnel may have (its agent opens as many as its config says, up to this).
pub const MAX_LANES: usize = mover_proto::limits::MAX_LANES;

/// The peer address of a connection, put in each request's extensions by the server.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

fn text(h: &HeaderMap, name: &str) -> String {
    clip(
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
    )
}

/// The first [`MAX_INFO_CHARS`] characters of what an agent says about itself.
fn clip(s: &str) -> String {
    s.chars().take(MAX_INFO_CHARS).collect()
}

/// An agent's info with each text clipped, wherever it came from (upgrade headers or Hello).
pub(crate) fn clip_info(info: AgentInfo) -> AgentInfo {
    AgentInfo {
        version: clip(&info.version),
        os: clip(&info.os),
        host: clip(&info.host),
        roots: info.roots,
    }
}

/// The connection's place under the caps, taken along when it becomes a tunnel.
fn take_pass(req: &Request) -> Option<Pass> {
    req.extensions()
        .get::<crate::gate::Shared>()
        .and_then(|s| s.take())
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
    let connector = known.map(|c| (c.id, c.name));
    // An unauthorized tunnel takes its waiting place before anything is stored or answered:
    // checked and counted under one lock, so concurrent upgrades cannot race past the caps.
    let reservation = match connector {
        Some(_) => None,
        None => match app.registry.reserve_waiting(peer, &hash) {
            Ok(r) => r,
            Err(full) => {
                let msg = match full {
                    WaitingFull::Address => {
                        format!("too many agents from {peer} are waiting for authorization")
                    }
                    WaitingFull::Total => {
                        "too many agents are waiting for authorization".to_owned()
                    }
                };
                return ApiError::new(StatusCode::TOO_MANY_REQUESTS, msg).into_response();
            }
        },
    };
    if crate::is_valid_key(&previous) && previous != key {
        retire(&app, key_hash(&previous)).await;
    }
    let session = match &connector {
        Some((_, name)) => SessionState::Authorized { name: name.clone() },
        None => SessionState::Waiting,
    };
    let mut pass = take_pass(&req);
    if connector.is_some() {
        if let Some(p) = &mut pass {
            p.authenticated();
        }
    }
    let conn_id = CONN_IDS.fetch_add(1, Ordering::Relaxed);
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let tunnel = Tunnel {
                    hash,
                    info,
                    peer,
                    connector,
                    conn_id,
                };
                run(app, upgraded, tunnel, reservation, pass).await
            }
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

/// The agent proves it held the key `old` (it sent it with its new one): when an authorized
/// connector holds it, it is revoked so it stops working here. A key no connector holds is
/// left alone: nothing is stored for a key that was never authorized.
async fn retire(app: &App, old: String) {
    match app.store.retire_key(old.clone()).await {
        Ok(Some(id)) => {
            tracing::info!(connector = %id, "connector key retired after --reset-key");
            if let Some(live) = app.registry.revoke(&old) {
                live.close.send_replace(true);
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "cannot retire the previous key"),
    }
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
    // The place is taken before the `101`, so racing upgrades cannot exceed the limit.
    let Some(slot) = live.reserve_lane() else {
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "this tunnel has all its lanes",
        )
        .into_response();
    };
    let mut pass = take_pass(&req);
    if let Some(p) = &mut pass {
        p.authenticated();
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => run_lane(upgraded, live, slot, pass).await,
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

/// Serves one extra lane until it or its tunnel closes; its place goes with it.
async fn run_lane(
    upgraded: hyper::upgrade::Upgraded,
    live: Live,
    _slot: LaneSlot,
    _pass: Option<Pass>,
) {
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

/// Who an accepted tunnel is.
struct Tunnel {
    hash: String,
    info: AgentInfo,
    peer: std::net::IpAddr,
    connector: Option<(String, String)>,
    conn_id: u64,
}

async fn run(
    app: Arc<App>,
    upgraded: hyper::upgrade::Upgraded,
    tunnel: Tunnel,
    reservation: Option<Reservation>,
    _pass: Option<Pass>,
) {
    let Tunnel {
        hash,
        info,
        peer,
        connector,
        conn_id,
    } = tunnel;
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
        lane_slots: Arc::default(),
    };
    match app.registry.insert(hash.clone(), live, reservation) {
        Ok(Some(old)) => {
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
        Ok(None) => {}
        Err(crate::registry::Revoked) => {
            tracing::info!(key = %&hash[..8], "a tunnel for a key revoked meanwhile is closed");
            close.send_replace(true);
            let _ = conn_task.await;
            return;
        }
    }
    tracing::info!(key = %&hash[..8], host = %info.host, authorized = connector.is_some(), "agent tunnel up");
    let events = tokio::spawn(events::follow(app.clone(), client, hash.clone(), conn_id));
    // A tunnel left waiting is closed after a while; its agent dials again if it is real.
    let expiry = connector.is_none().then(|| {
        let (app, hash, close) = (app.clone(), hash.clone(), close.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(WAITING_TIMEOUT_SECS)).await;
            if app
                .registry
                .by_key(&hash)
                .is_some_and(|l| l.conn_id == conn_id && l.connector.is_none())
            {
                tracing::info!(key = %&hash[..8], "a tunnel waited too long for authorization");
                close.send_replace(true);
            }
        })
    });
    let _ = conn_task.await;
    // The lanes go with the tunnel.
    close.send_replace(true);
    events.abort();
    if let Some(expiry) = expiry {
        expiry.abort();
    }
    if let Some(Some(id)) = app.registry.remove(&hash, conn_id) {
        let _ = app.store.seen(id).await;
    }
    tracing::info!(key = %&hash[..8], "agent tunnel down");
}
