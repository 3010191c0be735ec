//! A raw client of Bifrost's one port, for the tests of clients that have not authenticated:
//! TLS from a chosen loopback address, hand-written tunnel upgrades, and a do-nothing HTTP/2
//! server on an upgraded connection so Bifrost keeps the tunnel up.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

/// A TLS connection to Bifrost.
pub type Conn = TlsStream<TcpStream>;

/// A client config that trusts the test CA.
pub fn tls(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Opens TCP from `from` (a loopback address) to `to`.
pub async fn tcp(to: SocketAddr, from: IpAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// Opens TCP from `from` and completes TLS.
pub async fn connect(
    to: SocketAddr,
    from: IpAddr,
    tls: Arc<rustls::ClientConfig>,
) -> std::io::Result<Conn> {
    let tcp = tcp(to, from).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1")
        .unwrap()
        .to_owned();
    tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
}

/// A fresh valid connector key (32 lowercase hex characters), different every call.
pub fn random_key() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let seed = format!(
        "{:?}{}{}",
        std::time::SystemTime::now(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    blake3::hash(seed.as_bytes()).to_hex()[..32].to_owned()
}

/// The upgrade request an agent sends, with `extra` headers.
pub fn upgrade(key: &str, extra: &[(&str, String)]) -> String {
    use mover_proto::header;
    let mut req = format!(
        "GET {} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: upgrade\r\nupgrade: {}\r\n{}: {}\r\n{}: {key}\r\n{}: 0.0.0\r\n{}: test\r\n{}: raw\r\n",
        mover_proto::TUNNEL_PATH,
        mover_proto::TUNNEL_UPGRADE,
        header::PROTOCOL,
        mover_proto::PROTOCOL_VERSION,
        header::KEY,
        header::VERSION,
        header::OS,
        header::HOST,
    );
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req
}

/// A response's status and headers (names lower case).
pub struct Head {
    pub status: u16,
    pub headers: HashMap<String, String>,
}

/// Sends `req` and reads the response head byte by byte (after a `101` the next bytes are
/// Bifrost's HTTP/2 preface, which must stay unread) and, for other answers, the body.
pub async fn send(conn: &mut Conn, req: &str) -> std::io::Result<Head> {
    conn.write_all(req.as_bytes()).await?;
    conn.flush().await?;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let b = conn.read_u8().await?;
        head.push(b);
        if head.len() > 64 * 1024 {
            return Err(std::io::Error::other("response head too long"));
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {text}")))?;
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if status != 101 {
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        conn.read_exact(&mut body).await?;
    }
    Ok(Head { status, headers })
}

/// Serves HTTP/2 on an upgraded connection, answering every request of Bifrost's `200` with
/// an empty body, until Bifrost closes it.
pub fn serve_tunnel(conn: Conn) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let svc = hyper::service::service_fn(|_req| async {
            Ok::<_, Infallible>(hyper::Response::new(Empty::<Bytes>::new()))
        });
        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(conn), svc)
            .await;
    })
}

/// Upgrades with a fresh connection from `from` and, on `101`, serves the tunnel.
pub async fn tunnel(
    to: SocketAddr,
    from: IpAddr,
    tls: Arc<rustls::ClientConfig>,
    req: &str,
) -> std::io::Result<(Head, Option<tokio::task::JoinHandle<()>>)> {
    let mut conn = connect(to, from, tls).await?;
    let head = send(&mut conn, req).await?;
    let served = (head.status == 101).then(|| serve_tunnel(conn));
    Ok((head, served))
}
