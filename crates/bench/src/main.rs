//! Network helpers for `scripts/bench.sh`: a WAN-like delay proxy, and a raw TLS stream (sink
//! and sender) that is the baseline for the tunnel's throughput through that proxy.
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

#[derive(Parser)]
#[command(about = "Network helpers for the Mover benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Forwards TCP to TARGET, delaying each direction by half of --rtt-ms and buffering at most
    /// --buffer bytes per direction (the kernel here has no netem).
    DelayProxy {
        #[arg(long)]
        listen: String,
        #[arg(long)]
        target: String,
        #[arg(long)]
        rtt_ms: u64,
        #[arg(long, default_value_t = 4 << 20)]
        buffer: usize,
    },
    /// Accepts TLS connections, reads each to the end, and answers with the byte count; writes
    /// its self-signed certificate (DER) to --cert-out for the sender to trust.
    TlsSink {
        #[arg(long)]
        listen: String,
        #[arg(long)]
        cert_out: std::path::PathBuf,
    },
    /// Sends --bytes over one TLS connection to the sink and prints "BYTES SECONDS".
    TlsSend {
        #[arg(long)]
        to: String,
        #[arg(long)]
        bytes: u64,
        /// The sink's certificate (DER).
        #[arg(long)]
        cert: std::path::PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::DelayProxy {
            listen,
            target,
            rtt_ms,
            buffer,
        } => delay_proxy(&listen, &target, Duration::from_millis(rtt_ms / 2), buffer).await,
        Command::TlsSink { listen, cert_out } => tls_sink(&listen, &cert_out).await,
        Command::TlsSend { to, bytes, cert } => tls_send(&to, bytes, &cert).await,
    }
}

async fn delay_proxy(
    listen: &str,
    target: &str,
    delay: Duration,
    buffer: usize,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (client, _) = listener.accept().await?;
        let target = target.to_owned();
        tokio::spawn(async move {
            let Ok(upstream) = TcpStream::connect(&target).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (ur, uw) = upstream.into_split();
            tokio::join!(pipe(cr, uw, delay, buffer), pipe(ur, cw, delay, buffer));
        });
    }
}

/// Largest read, and so the granularity of the buffer limit.
const CHUNK: usize = 64 << 10;

/// One direction: reads only while fewer than `buffer` bytes are held (like a socket's buffer,
/// so the sender feels the bandwidth-delay product) and delivers each chunk `delay` later.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    buffer: usize,
) {
    let room = Arc::new(Semaphore::new(buffer.max(CHUNK)));
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = {
        let room = room.clone();
        tokio::spawn(async move {
            while let Some((due, data)) = rx.recv().await {
                if data.is_empty() {
                    break;
                }
                tokio::time::sleep_until(due.into()).await;
                if to.write_all(&data).await.is_err() {
                    return;
                }
                room.add_permits(data.len());
            }
            let _ = to.shutdown().await;
        })
    };
    let mut buf = vec![0u8; CHUNK];
    loop {
        let Ok(permit) = room.acquire_many(CHUNK as u32).await else {
            break;
        };
        permit.forget();
        let n = from.read(&mut buf).await.unwrap_or(0);
        room.add_permits(CHUNK - n);
        let _ = tx.send((Instant::now() + delay, buf[..n].to_vec()));
        if n == 0 {
            break;
        }
    }
    let _ = writer.await;
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts TLS connections, reads each to its end, answers with the byte count.
async fn tls_sink(listen: &str, cert_out: &std::path::Path) -> anyhow::Result<()> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    std::fs::write(cert_out, cert.cert.der()).context("write the certificate")?;
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
        .map_err(|e| anyhow!("{e}"))?;
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)?;
    let listener = TcpListener::bind(listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    loop {
        let (tcp, _) = listener.accept().await?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            let mut buf = vec![0u8; 1 << 20];
            let mut total: u64 = 0;
            loop {
                match tls.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => total += n as u64,
                }
            }
            let _ = tls.write_all(format!("{total}\n").as_bytes()).await;
            let _ = tls.shutdown().await;
        });
    }
}

async fn tls_send(to: &str, bytes: u64, cert: &std::path::Path) -> anyhow::Result<()> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls::pki_types::CertificateDer::from(
        std::fs::read(cert).context("read the sink's certificate")?,
    ))?;
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let tcp = TcpStream::connect(to).await.context("connect")?;
    tcp.set_nodelay(true)?;
    let connector = tokio_rustls::TlsConnector::from(client);
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let started = Instant::now();
    let mut tls = connector.connect(name, tcp).await.context("handshake")?;
    let chunk = vec![0x5au8; 256 << 10];
    let mut left = bytes;
    while left > 0 {
        let n = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        tls.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    tls.flush().await?;
    // Half-close so the sink sees the end, then wait for its count: the time covers delivery.
    let (mut r, mut w) = tokio::io::split(tls);
    w.shutdown().await?;
    let mut answer = String::new();
    r.read_to_string(&mut answer).await.ok();
    let got: u64 = answer.trim().parse().context("the sink's count")?;
    if got != bytes {
        return Err(anyhow!("the sink received {got} of {bytes} bytes"));
    }
    println!("{bytes} {:.3}", started.elapsed().as_secs_f64());
    Ok(())
}
