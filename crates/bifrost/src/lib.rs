//! Bifrost: the relay agents dial into, its JSON API and the transfer engine.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod agent_client;
pub mod allowed_roots;
pub mod api;
pub mod bucket;
pub mod connectors;
pub mod console;
pub mod dest;
pub mod destinations;
pub mod engine;
pub mod failure;
pub mod gate;
pub mod idle;
pub mod jobs;
pub mod layout;
pub mod metrics;
pub mod raw_path;
pub mod registry;
pub mod releases;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod tree;
pub mod tunnel;
pub mod walk;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use mover_proto::limits::{
    BODY_TIMEOUT_SECS, HEADER_TIMEOUT_SECS, IDLE_TIMEOUT_SECS, KEEP_ALIVE_SECS, MAX_BODY_BYTES,
    MAX_STREAMS_PER_CONNECTION, TLS_HANDSHAKE_SECS,
};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Shared state of a running Bifrost.
pub struct App {
    /// The database.
    pub store: store::Store,
    /// Live tunnels.
    pub registry: registry::Registry,
    /// Running jobs.
    pub engine: engine::Engine,
    /// Hosted agent releases and their feed (`DATA/releases`, served under `/updates/`).
    pub releases: PathBuf,
    /// Wrong tokens and passwords per address, failed sign-ins per account.
    pub wrong_tokens: api::wrong_token::WrongTokens,
    /// Password hashing, a few at a time.
    pub hasher: accounts::Hasher,
    /// How long console sessions last.
    pub sessions: accounts::SessionPolicy,
    /// Named destinations' sealing key and request counters.
    pub destinations: destinations::Shared,
}

/// What `serve` needs.
pub struct Settings {
    /// Data folder: database, certificate, admin token.
    pub data: PathBuf,
    /// TLS server config.
    pub tls: Arc<rustls::ServerConfig>,
}

/// BLAKE3 of a connector key, hex: Bifrost stores only this.
pub fn key_hash(key: &str) -> String {
    blake3::hash(key.as_bytes()).to_hex().to_string()
}

/// Whether `s` is exactly 32 lowercase hex characters.
pub fn is_valid_key(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Reads the bootstrap admin token from `DATA/admin.token`, making it on first start.
/// Returns the token and whether it is new.
pub fn admin_token(data: &std::path::Path) -> anyhow::Result<(String, bool)> {
    let path = data.join(tokens::admin::FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => Ok((t.trim().to_owned(), false)),
        Ok(_) => anyhow::bail!(
            "{} is empty; delete it to make a new admin token",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = tokens::new_secret()?.expose().to_owned();
            tls::write_private(&path, format!("{token}\n").as_bytes())?;
            Ok((token, true))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Opens the database, makes `admin_token` (`DATA/admin.token`) the bootstrap admin token, and
/// resumes unfinished jobs.
pub async fn open(
    data: &std::path::Path,
    admin_token: String,
    sessions: accounts::SessionPolicy,
) -> anyhow::Result<Arc<App>> {
    // reqwest (object_store's client) is built without a crypto provider: it takes ring's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let store = store::Store::open(&data.join("bifrost.db")).context("cannot open the database")?;
    // Only its hash is kept; requests are checked against the database, where `bifrost token
    // rotate` replaces it. A file changed while Bifrost was stopped ends the old one's sessions.
    let (changed, ended) = store
        .set_bootstrap(tokens::hash(&admin_token))
        .await
        .context("cannot store the admin token")?;
    if changed && ended > 0 {
        tracing::info!(ended, "the admin token changed: its sessions ended");
    }
    let app = Arc::new(App {
        store,
        registry: Default::default(),
        engine: Default::default(),
        releases: releases::dir(data),
        wrong_tokens: Default::default(),
        hasher: Default::default(),
        sessions,
        destinations: destinations::Shared::new(data),
    });
    for id in app.store.unfinished_jobs().await? {
        tracing::info!(job = %id, "resuming job");
        engine::start(&app, id);
    }
    Ok(app)
}

/// Serves agents, the API and the console on `listener` until `shutdown` resolves.
///
/// Every connection is admitted under the caps of [`gate::Gate`] (refused ones are closed at
/// once, before TLS) and then bounded in time: the TLS handshake, the request headers and
/// bodies, and silence on the connection each have a timeout (`mover_proto::limits`).
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(app, listener, tls, gate::Gate::for_process(), shutdown).await
}

/// [`serve`] with the given connection caps.
pub async fn serve_with(
    app: Arc<App>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    gate: gate::Gate,
    shutdown: impl Future<Output = ()>,
) {
    let router = api::router(app);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        // Closed at once rather than left in the backlog, where it would hold the places of
        // connections that are welcome.
        let pass = match gate.admit(peer.ip()) {
            Ok(pass) => pass,
            Err(why) => {
                tracing::debug!(%peer, ?why, "connection refused: too many");
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(
                Duration::from_secs(TLS_HANDSHAKE_SECS),
                acceptor.accept(tcp),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let io = idle::Idle::new(tls, Duration::from_secs(IDLE_TIMEOUT_SECS));
            let pass = gate::Shared::new(pass);
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (router, pass) = (router.clone(), pass.clone());
                    async move {
                        let mut req = match bounded_body(req).await {
                            Ok(req) => req,
                            Err(res) => return Ok(res),
                        };
                        req.extensions_mut().insert(tunnel::Peer(peer));
                        req.extensions_mut().insert(pass);
                        router.oneshot(req).await
                    }
                });
            if let Err(e) = connection_builder()
                .serve_connection_with_upgrades(TokioIo::new(io), svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
}

/// hyper's server side, with the limits on what a client's connection may hold.
fn connection_builder() -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(HEADER_TIMEOUT_SECS));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(KEEP_ALIVE_SECS))
        .keep_alive_timeout(Duration::from_secs(KEEP_ALIVE_SECS))
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION);
    builder
}

/// The request with its body read in full within [`BODY_TIMEOUT_SECS`] and
/// [`MAX_BODY_BYTES`] (the API takes small JSON bodies only), or the answer that refuses it.
/// A client trickling a body cannot hold a task and a connection open for longer.
async fn bounded_body(
    req: http::Request<hyper::body::Incoming>,
) -> Result<axum::extract::Request, axum::response::Response> {
    use http_body::Body as _;
    let (parts, body) = req.into_parts();
    if body.is_end_stream() {
        return Ok(http::Request::from_parts(parts, axum::body::Body::empty()));
    }
    let read = http_body_util::Limited::new(body, MAX_BODY_BYTES).collect();
    match tokio::time::timeout(Duration::from_secs(BODY_TIMEOUT_SECS), read).await {
        Ok(Ok(collected)) => Ok(http::Request::from_parts(
            parts,
            axum::body::Body::from(collected.to_bytes()),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(api::ApiError::new(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("a request body may have at most {MAX_BODY_BYTES} bytes"),
        )
        .into_response()),
        Ok(Err(e)) => Err(
            api::ApiError::bad_request(format!("the request body broke off: {e}")).into_response(),
        ),
        Err(_) => {
            let mut res = api::ApiError::new(
                http::StatusCode::REQUEST_TIMEOUT,
                format!("the request body took over {BODY_TIMEOUT_SECS} s"),
            )
            .into_response();
            res.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            Err(res)
        }
    }
}
