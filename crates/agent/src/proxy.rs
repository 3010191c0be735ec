//! HTTP CONNECT proxy support: `HTTPS_PROXY` / `NO_PROXY` and the CONNECT handshake.

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A proxy taken from the environment.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    /// `host:port` of the proxy.
    pub addr: String,
    /// `user:pass`, sent as Basic proxy authorization.
    credentials: Option<String>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credentials are a secret.
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// The proxy to use for `host`: the config's `proxy` (with its `no_proxy`) when set, else
    /// the environment's.
    pub fn for_host(config: &crate::Config, host: &str) -> Result<Option<Self>, String> {
        let Some(url) = &config.proxy else {
            return Self::from_env(host);
        };
        if config
            .no_proxy
            .as_deref()
            .is_some_and(|n| bypasses(n, host))
        {
            return Ok(None);
        }
        Self::parse(&url.0).map(Some)
    }

    /// The proxy to use for `host`, from `HTTPS_PROXY`/`https_proxy` and `NO_PROXY`/`no_proxy`.
    pub fn from_env(host: &str) -> Result<Option<Self>, String> {
        let var = |a: &str, b: &str| {
            std::env::var(a)
                .or_else(|_| std::env::var(b))
                .ok()
                .filter(|v| !v.is_empty())
        };
        let Some(url) = var("HTTPS_PROXY", "https_proxy") else {
            return Ok(None);
        };
        if let Some(no_proxy) = var("NO_PROXY", "no_proxy") {
            if bypasses(&no_proxy, host) {
                return Ok(None);
            }
        }
        Self::parse(&url).map(Some)
    }

    /// Parses `[http://][user:pass@]host[:port]`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("http://").unwrap_or(url);
        if rest.contains("://") {
            return Err(format!("proxy {url:?}: only http:// proxies are supported"));
        }
        let rest = rest.trim_end_matches('/');
        let (credentials, hostport) = match rest.rsplit_once('@') {
            Some((creds, hp)) => (Some(percent_decode(creds)), hp),
            None => (None, rest),
        };
        if hostport.is_empty() || hostport.contains('/') {
            return Err(format!("proxy {url:?} is not host[:port]"));
        }
        let has_port = hostport
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            && !hostport.ends_with(']');
        let addr = if has_port {
            hostport.to_owned()
        } else {
            format!("{hostport}:80")
        };
        Ok(Self { addr, credentials })
    }

    /// Dials the proxy and asks it for a tunnel to `target` (`host:port`).
    pub async fn connect(&self, target: &str) -> Result<TcpStream, String> {
        let mut stream = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| e.to_string())?;
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(creds) = &self.credentials {
            let encoded = base64::engine::general_purpose::STANDARD.encode(creds);
            request.push_str(&format!("Proxy-Authorization: Basic {encoded}\r\n"));
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        // Read byte by byte up to the blank line so no tunnel bytes are swallowed.
        let mut head = Vec::with_capacity(256);
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 16 * 1024 {
                return Err("answered CONNECT with an oversized header".into());
            }
            let byte = stream
                .read_u8()
                .await
                .map_err(|e| format!("closed during CONNECT: {e}"))?;
            head.push(byte);
        }
        let text = String::from_utf8_lossy(&head);
        let status_line = text.lines().next().unwrap_or_default().to_owned();
        let code = status_line.split_whitespace().nth(1).unwrap_or_default();
        if code == "200" {
            Ok(stream)
        } else {
            Err(format!(
                "refused CONNECT to {target}: {}",
                status_line.trim()
            ))
        }
    }
}

/// Whether `NO_PROXY` excludes `host`: `*`, exact names, and domain suffixes (`.corp`, `corp`).
fn bypasses(no_proxy: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    no_proxy
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .any(|entry| {
            if entry == "*" {
                return true;
            }
            let entry = entry
                .split(':')
                .next()
                .unwrap_or_default()
                .trim_start_matches("*.");
            let entry = entry.trim_start_matches('.');
            host == entry || host.ends_with(&format!(".{entry}"))
        })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configs_proxy_wins_and_honours_its_no_proxy() {
        let config = crate::Config {
            proxy: Some(crate::config::ProxyUrl("http://proxy.corp:3128".into())),
            no_proxy: Some("localhost,.internal".into()),
            ..crate::Config::default()
        };
        let p = Proxy::for_host(&config, "bifrost.example.com")
            .unwrap()
            .unwrap();
        assert_eq!(p.addr, "proxy.corp:3128");
        assert_eq!(Proxy::for_host(&config, "b.internal").unwrap(), None);
        assert_eq!(Proxy::for_host(&config, "localhost").unwrap(), None);
    }

    #[test]
    fn parses_proxy_urls() {
        let p = Proxy::parse("http://user:p%40ss@proxy.corp:3128/").unwrap();
        assert_eq!(p.addr, "proxy.corp:3128");
        assert_eq!(p.credentials.as_deref(), Some("user:p@ss"));
        assert_eq!(Proxy::parse("proxy").unwrap().addr, "proxy:80");
        assert!(Proxy::parse("socks5://x:1").is_err());
        assert!(!format!("{p:?}").contains("ss"));
    }

    #[test]
    fn no_proxy_rules() {
        assert!(bypasses("*", "a.b"));
        assert!(bypasses("localhost,.corp", "bifrost.corp"));
        assert!(bypasses("corp", "bifrost.corp"));
        assert!(bypasses("127.0.0.1", "127.0.0.1"));
        assert!(!bypasses("corp", "notcorp"));
        assert!(!bypasses("", "x"));
    }
}
