//! HTTP(S) GETs for the updater: the feed and the archives, through the proxy when one is set,
//! trusting the agent's own Bifrost as the tunnel does.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::resolve;
use crate::config::Config;
use crate::proxy::Proxy;

/// Redirects followed (release hosts commonly redirect downloads to a CDN).
const MAX_REDIRECTS: usize = 5;
const HTTP_TIMEOUT: Duration = Duration::from_secs(300);

/// GETs `url` (http or https, through `HTTPS_PROXY` when set), following redirects.
pub(super) async fn get(url: &str, config: &Config, limit: usize) -> Result<Bytes, String> {
    let mut url = url.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        match tokio::time::timeout(HTTP_TIMEOUT, get_once(&url, config, limit)).await {
            Err(_) => return Err(format!("no answer within {}s", HTTP_TIMEOUT.as_secs())),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(Fetched::Body(b))) => return Ok(b),
            Ok(Ok(Fetched::Redirect(to))) => url = resolve_redirect(&url, &to),
        }
    }
    Err(format!("more than {MAX_REDIRECTS} redirects"))
}

pub(super) fn resolve_redirect(from: &str, to: &str) -> String {
    if to.contains("://") {
        return to.to_owned();
    }
    let Ok(uri) = from.parse::<Uri>() else {
        return to.to_owned();
    };
    let origin = format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("https"),
        uri.authority().map(|a| a.as_str()).unwrap_or_default()
    );
    if to.starts_with('/') {
        format!("{origin}{to}")
    } else {
        resolve(from, to)
    }
}

enum Fetched {
    Body(Bytes),
    Redirect(String),
}

async fn get_once(url: &str, config: &Config, limit: usize) -> Result<Fetched, String> {
    let uri: Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("only https:// and http:// addresses are supported".into()),
    };
    let host = uri.host().ok_or("the address has no host")?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let tcp = match Proxy::for_host(config, &host)? {
        Some(p) => p
            .connect(&target)
            .await
            .map_err(|e| format!("proxy: {e}"))?,
        None => TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot reach {target}: {e}"))?,
    };
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    if https {
        // A feed on the agent's own Bifrost is trusted as the tunnel trusts Bifrost (a pinned
        // or private certificate); any other host by the platform's trust store.
        let same_relay = config
            .relay_addr()
            .ok()
            .flatten()
            .is_some_and(|r| r.host == host && r.port == port);
        let tls = if same_relay {
            crate::tls::client_config(config)
        } else {
            crate::tls::client_config(&Config::default())
        }
        .map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|_| format!("{host} is not a valid host name"))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {target}: {e}"))?;
        request(stream, &target, &path, limit).await
    } else {
        request(tcp, &target, &path, limit).await
    }
}

async fn request<S>(stream: S, host: &str, path: &str, limit: usize) -> Result<Fetched, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::get(path)
        .header(http::header::HOST, host)
        .header(
            http::header::USER_AGENT,
            format!("mover-agent/{}", crate::VERSION),
        )
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = res.status();
    if status.is_redirection() {
        let to = res
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("HTTP {status} without a Location"))?;
        return Ok(Fetched::Redirect(to.to_owned()));
    }
    if status != StatusCode::OK {
        return Err(format!("HTTP {status}"));
    }
    let body = Limited::new(res.into_body(), limit)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    Ok(Fetched::Body(body.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve_against_the_origin() {
        assert_eq!(
            resolve_redirect("https://h/updates/feed.json", "/other/x"),
            "https://h/other/x"
        );
    }
}
