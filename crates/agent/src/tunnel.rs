//! Dialing Bifrost (TCP or proxy, TLS 1.3, HTTP/1.1 upgrade) and serving HTTP/2 over the result.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::upgrade::Upgraded;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use mover_proto::{
    header, ErrorBody, SessionState, HANDSHAKE_TIMEOUT_SECS, PROTOCOL_VERSION, TUNNEL_PATH,
    TUNNEL_UPGRADE,
};
use tokio::net::TcpStream;

use crate::config::{Config, RelayAddr};
use crate::key::ConnectorKey;
use crate::proxy::Proxy;
use crate::service::{self, Tunnel};
use crate::status::Detail;

/// Why a tunnel could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP to Bifrost failed.
    #[error("cannot reach {addr}: {reason}")]
    Tcp {
        /// `HOST:PORT`.
        addr: String,
        /// OS reason.
        reason: String,
    },
    /// The proxy failed.
    #[error("proxy {proxy}: {reason}")]
    Proxy {
        /// Proxy address.
        proxy: String,
        /// What happened.
        reason: String,
    },
    /// Bifrost's certificate was refused.
    #[error("certificate rejected: {0}")]
    Certificate(String),
    /// Another TLS failure.
    #[error("TLS handshake with {addr} failed: {reason}")]
    Tls {
        /// `HOST:PORT`.
        addr: String,
        /// What happened.
        reason: String,
    },
    /// Bifrost revoked this key.
    #[error("revoked by Bifrost")]
    Revoked,
    /// Bifrost refused the upgrade.
    #[error("Bifrost refused the tunnel: {0}")]
    Rejected(String),
    /// The local settings cannot work.
    #[error("{0}")]
    Config(String),
    /// An extra lane named a tunnel Bifrost no longer has.
    #[error("Bifrost has no such tunnel: {0}")]
    NoTunnel(String),
}

impl ConnectError {
    /// The status detail this error shows as.
    pub fn detail(&self) -> Detail {
        match self {
            ConnectError::Tcp { addr, reason } => Detail::CannotReach {
                addr: addr.clone(),
                reason: reason.clone(),
            },
            ConnectError::Proxy { proxy, reason } => Detail::Proxy {
                proxy: proxy.clone(),
                reason: reason.clone(),
            },
            ConnectError::Certificate(reason) => Detail::CertificateRejected {
                reason: reason.clone(),
            },
            ConnectError::Revoked => Detail::Revoked,
            other => Detail::Failed {
                reason: other.to_string(),
            },
        }
    }
}

/// What the agent tells Bifrost in the upgrade request.
pub struct Hello<'a> {
    /// The connector key.
    pub key: &'a ConnectorKey,
    /// A key replaced by `--reset-key`, for Bifrost to retire.
    pub previous_key: Option<&'a ConnectorKey>,
    /// Agent version.
    pub version: &'a str,
    /// Host name.
    pub host: &'a str,
    /// OS and version.
    pub os: &'a str,
    /// Set on an extra lane: the id of the tunnel it belongs to.
    pub lane_of: Option<u64>,
}

/// An open tunnel and what Bifrost said when it opened.
pub struct Dialed {
    /// The raw connection, to serve HTTP/2 on.
    pub upgraded: Upgraded,
    /// Bifrost's view of this key.
    pub session: SessionState,
    /// The tunnel's id and how many extra lanes Bifrost accepts for it (first tunnels only).
    pub lanes: Option<(u64, usize)>,
}

/// Opens TCP (maybe through the proxy), TLS 1.3 and the upgrade; returns the raw tunnel
/// and what Bifrost said about this key.
pub async fn dial(
    config: &Config,
    relay: &RelayAddr,
    hello: &Hello<'_>,
) -> Result<Dialed, ConnectError> {
    let timeout = Duration::from_secs(HANDSHAKE_TIMEOUT_SECS);
    match tokio::time::timeout(timeout, dial_inner(config, relay, hello)).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Tcp {
            addr: relay.to_string(),
            reason: "timed out".into(),
        }),
    }
}

async fn dial_inner(
    config: &Config,
    relay: &RelayAddr,
    hello: &Hello<'_>,
) -> Result<Dialed, ConnectError> {
    let addr = relay.to_string();
    let tls = crate::tls::client_config(config).map_err(|e| ConnectError::Config(e.to_string()))?;
    let proxy = Proxy::for_host(config, &relay.host).map_err(ConnectError::Config)?;
    let tcp = match &proxy {
        // Never fall back to a direct connection: the proxy is how this network reaches out.
        Some(p) => p
            .connect(&addr)
            .await
            .map_err(|reason| ConnectError::Proxy {
                proxy: p.addr.clone(),
                reason,
            })?,
        None => TcpStream::connect((relay.host.as_str(), relay.port))
            .await
            .map_err(|e| ConnectError::Tcp {
                addr: addr.clone(),
                reason: e.to_string(),
            })?,
    };
    let _ = tcp.set_nodelay(true);
    let name = rustls::pki_types::ServerName::try_from(relay.host.clone())
        .map_err(|_| ConnectError::Config(format!("{} is not a valid host name", relay.host)))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .map_err(|e| tls_error(&addr, e))?;
    upgrade(tls, relay, hello).await
}

fn tls_error(addr: &str, e: std::io::Error) -> ConnectError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(c)) => ConnectError::Certificate(cert_reason(c)),
        Some(other) => ConnectError::Tls {
            addr: addr.to_owned(),
            reason: other.to_string(),
        },
        None => ConnectError::Tls {
            addr: addr.to_owned(),
            reason: e.to_string(),
        },
    }
}

fn cert_reason(c: &rustls::CertificateError) -> String {
    match c {
        rustls::CertificateError::Other(other) => other.to_string(),
        rustls::CertificateError::UnknownIssuer => "issued by an authority this agent does not trust (use --relay-ca or --relay-fingerprint)".into(),
        rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. } => {
            "not valid for Bifrost's host name".into()
        }
        other => format!("{other:?}"),
    }
}

async fn upgrade<S>(stream: S, relay: &RelayAddr, hello: &Hello<'_>) -> Result<Dialed, ConnectError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let rejected = |e: &dyn std::fmt::Display| ConnectError::Rejected(e.to_string());
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| rejected(&e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "upgrade connection ended");
        }
    });
    let hv =
        |s: &str| HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    let mut req = Request::get(TUNNEL_PATH)
        .header(http::header::HOST, relay.to_string())
        .header(http::header::CONNECTION, "upgrade")
        .header(http::header::UPGRADE, TUNNEL_UPGRADE)
        .body(Empty::new())
        .map_err(|e| rejected(&e))?;
    let h = req.headers_mut();
    h.insert(header::KEY, hv(hello.key.expose()));
    if let Some(prev) = hello.previous_key {
        h.insert(header::PREVIOUS_KEY, hv(prev.expose()));
    }
    h.insert(header::PROTOCOL, hv(&PROTOCOL_VERSION.to_string()));
    h.insert(header::VERSION, hv(hello.version));
    h.insert(header::HOST, hv(hello.host));
    h.insert(header::OS, hv(hello.os));
    if let Some(id) = hello.lane_of {
        h.insert(header::LANE_OF, hv(&id.to_string()));
    }
    let res = sender.send_request(req).await.map_err(|e| rejected(&e))?;
    let status = res.status();
    if status == StatusCode::SWITCHING_PROTOCOLS {
        let session = res
            .headers()
            .get(header::SESSION)
            .and_then(|v| serde_json::from_slice::<SessionState>(v.as_bytes()).ok())
            .unwrap_or(SessionState::Waiting);
        let number = |name: &str| -> Option<u64> {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
        };
        let lanes = number(header::TUNNEL_ID).zip(number(header::LANES).map(|n| n as usize));
        let upgraded = hyper::upgrade::on(res).await.map_err(|e| rejected(&e))?;
        return Ok(Dialed {
            upgraded,
            session,
            lanes,
        });
    }
    let body = Limited::new(res.into_body(), 16 * 1024)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let message = serde_json::from_slice::<ErrorBody>(&body)
        .map(|b| b.error)
        .unwrap_or_else(|_| format!("HTTP {status}"));
    Err(match status {
        StatusCode::FORBIDDEN => ConnectError::Revoked,
        StatusCode::CONFLICT => ConnectError::NoTunnel(message),
        _ => ConnectError::Rejected(message),
    })
}

/// Serves the agent's routes over the tunnel until it closes.
pub async fn serve(upgraded: Upgraded, tunnel: Tunnel) -> Result<(), hyper::Error> {
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        // Pings every 10 s with a 10 s deadline notice a dead link within the 30 s promised.
        .keep_alive_interval(Some(Duration::from_secs(10)))
        .keep_alive_timeout(Duration::from_secs(10))
        .max_send_buf_size(4 * 1024 * 1024)
        .max_concurrent_streams(512)
        .max_header_list_size(64 * 1024);
    let svc = hyper::service::service_fn(move |req| service::handle(tunnel.clone(), req));
    builder.serve_connection(upgraded, svc).await
}
