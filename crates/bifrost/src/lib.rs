//! Bifrost: the relay agents dial into, its JSON API and the transfer engine.
#![forbid(unsafe_code)]

pub mod agent_client;
pub mod api;
pub mod console;
pub mod engine;
pub mod layout;
pub mod metrics;
pub mod raw_path;
pub mod registry;
pub mod releases;
pub mod store;
pub mod tls;
pub mod tunnel;
pub mod walk;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Shared state of a running Bifrost.
pub struct App {
    /// The database.
    pub store: store::Store,
    /// Live tunnels.
    pub registry: registry::Registry,
    /// The admin token the API expects.
    pub admin_token: String,
    /// Running jobs.
    pub engine: engine::Engine,
    /// Hosted agent releases and their feed (`DATA/releases`, served under `/updates/`).
    pub releases: PathBuf,
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

/// Reads the admin token from `DATA/admin.token`, making it on first start.
/// Returns the token and whether it is new.
pub fn admin_token(data: &std::path::Path) -> anyhow::Result<(String, bool)> {
    let path = data.join("admin.token");
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => Ok((t.trim().to_owned(), false)),
        Ok(_) => anyhow::bail!(
            "{} is empty; delete it to make a new admin token",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut b = [0u8; 24];
            getrandom::fill(&mut b)
                .map_err(|e| anyhow::anyhow!("the OS random source failed: {e}"))?;
            let token: String = b.iter().map(|x| format!("{x:02x}")).collect();
            tls::write_private(&path, format!("{token}\n").as_bytes())?;
            Ok((token, true))
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Opens the database and resumes unfinished jobs.
pub async fn open(data: &std::path::Path, admin_token: String) -> anyhow::Result<Arc<App>> {
    let store = store::Store::open(&data.join("bifrost.db")).context("cannot open the database")?;
    let app = Arc::new(App {
        store,
        registry: Default::default(),
        admin_token,
        engine: Default::default(),
        releases: releases::dir(data),
    });
    for id in app.store.unfinished_jobs().await? {
        tracing::info!(job = %id, "resuming job");
        engine::start(&app, id);
    }
    Ok(app)
}

/// Serves agents, the API and the console on `listener` until `shutdown` resolves.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
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
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(15), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let svc =
                hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(tunnel::Peer(peer));
                    router.clone().oneshot(req)
                });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30));
            if let Err(e) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), svc)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
}
