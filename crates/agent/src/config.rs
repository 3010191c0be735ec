//! The agent's config file: relay settings and shares that `start` saves for later starts.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors reading, validating or writing the config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("config file {path}: {source}")]
    Io {
        /// The config file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown settings.
    #[error("config file {path}: {message}")]
    Parse {
        /// The config file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A setting has a value that cannot work.
    #[error("{0}")]
    Invalid(String),
}

/// The agent's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Bifrost's `https://` address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<String>,
    /// A PEM file of CA certificates to trust for Bifrost instead of the platform store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_ca: Option<PathBuf>,
    /// SHA-256 of Bifrost's certificate (hex, any case, colons allowed), pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_fingerprint: Option<String>,
    /// Folders Bifrost may browse; empty shares what the agent's user can read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<PathBuf>,
    /// The release feed to update from (`https://…/feed.json`). The command-line agent with
    /// `auto_update` falls back to its own Bifrost's `/updates/feed.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_feed: Option<String>,
    /// The HTTP CONNECT proxy (`http://[user:pass@]host[:port]`) to reach Bifrost and the
    /// update feed through; services get no login environment, so this is where theirs goes.
    /// Set, it wins over `HTTPS_PROXY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyUrl>,
    /// Hosts reached without `proxy` (comma-separated, like `NO_PROXY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_proxy: Option<String>,
    /// TCP connections to Bifrost (1–8; 3 when unset): one carries the session, the others
    /// are extra lanes Bifrost spreads reads over, since one connection's buffers cap the
    /// rate over a long round trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnels: Option<u8>,
    /// The command-line agent and service update themselves from the feed (opt-in; package
    /// installs update through their package manager instead).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_update: bool,
    /// Release signing keys trusted besides the built-in ones (base64 of the 32-byte ed25519
    /// public key), for organizations that build and sign their own releases. Whoever can edit
    /// this file can already replace the agent's binary, so it grants nothing new.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub update_keys: Vec<String>,
}

/// A proxy address from the config; its credentials never show in `Debug` output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProxyUrl(pub String);

impl std::fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = match self.0.rsplit_once('@') {
            Some((_, host)) => format!("…@{host}"),
            None => self.0.clone(),
        };
        f.debug_tuple("ProxyUrl").field(&shown).finish()
    }
}

/// A relay address split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayAddr {
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl std::fmt::Display for RelayAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Config {
    /// Reads the config; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(ConfigError::Io {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let config: Self = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: e.message().to_owned(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Writes the config atomically.
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        let io = |source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        };
        let text = toml::to_string_pretty(self)
            .map_err(|e| ConfigError::Invalid(format!("cannot write the config: {e}")))?;
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Checks every setting, so a bad one is reported at start, not at first use.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(relay) = &self.relay {
            parse_relay(relay)?;
        }
        if let Some(fp) = &self.relay_fingerprint {
            parse_fingerprint(fp)?;
        }
        if let Some(feed) = &self.update_feed {
            let ok = feed.parse::<http::Uri>().is_ok_and(|u| {
                matches!(u.scheme_str(), Some("https" | "http")) && u.host().is_some()
            });
            if !ok {
                return Err(ConfigError::Invalid(format!(
                    "update feed {feed:?} must be an https:// (or http://) address"
                )));
            }
        }
        if let Some(proxy) = &self.proxy {
            crate::proxy::Proxy::parse(&proxy.0).map_err(ConfigError::Invalid)?;
        }
        if let Some(n) = self.tunnels {
            if !(1..=8).contains(&n) {
                return Err(ConfigError::Invalid(format!(
                    "tunnels = {n}: use 1 to 8 connections"
                )));
            }
        }
        for key in &self.update_keys {
            parse_update_key(key)?;
        }
        for share in &self.shares {
            if !share.is_absolute() {
                return Err(ConfigError::Invalid(format!(
                    "share {} is not an absolute path",
                    share.display()
                )));
            }
        }
        Ok(())
    }

    /// The relay address, if one is configured.
    pub fn relay_addr(&self) -> Result<Option<RelayAddr>, ConfigError> {
        self.relay.as_deref().map(parse_relay).transpose()
    }

    /// The feed to update from: the configured one, else the relay's own.
    pub fn feed_url(&self) -> Option<String> {
        if let Some(feed) = &self.update_feed {
            return Some(feed.clone());
        }
        let relay = self.relay_addr().ok().flatten()?;
        Some(format!("https://{relay}/updates/feed.json"))
    }

    /// TCP connections to open to Bifrost, the session's included.
    pub fn tunnel_count(&self) -> usize {
        usize::from(self.tunnels.unwrap_or(3))
    }

    /// The extra trusted release keys, decoded.
    pub fn extra_update_keys(&self) -> Result<Vec<[u8; 32]>, ConfigError> {
        self.update_keys
            .iter()
            .map(|k| parse_update_key(k))
            .collect()
    }
}

/// Decodes a release public key: base64 (standard alphabet) of 32 bytes.
pub fn parse_update_key(key: &str) -> Result<[u8; 32], ConfigError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| {
            ConfigError::Invalid(format!(
                "update key {key:?} is not the base64 of a 32-byte ed25519 public key"
            ))
        })
}

/// Parses `https://host[:port][/]` into host and port (443 by default).
pub fn parse_relay(url: &str) -> Result<RelayAddr, ConfigError> {
    let bad = |why: &str| ConfigError::Invalid(format!("relay address {url:?} {why}"));
    let uri: http::Uri = url.parse().map_err(|_| bad("is not a URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(bad("must start with https://"));
    }
    if uri
        .path_and_query()
        .is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty())
    {
        return Err(bad("must not have a path"));
    }
    let authority = uri.authority().ok_or_else(|| bad("has no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("must not carry a user name"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    Ok(RelayAddr {
        host,
        port: authority.port_u16().unwrap_or(443),
    })
}

/// Parses a SHA-256 fingerprint: 64 hex digits, any case, colons allowed.
pub fn parse_fingerprint(fp: &str) -> Result<[u8; 32], ConfigError> {
    let hex: String = fp.chars().filter(|c| *c != ':').collect();
    let bad = || {
        ConfigError::Invalid(format!(
            "relay fingerprint {fp:?} is not a SHA-256 fingerprint (64 hex digits, colons allowed)"
        ))
    };
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls() {
        let a = parse_relay("https://bifrost.example.com").unwrap();
        assert_eq!((a.host.as_str(), a.port), ("bifrost.example.com", 443));
        let b = parse_relay("https://127.0.0.1:8443/").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("127.0.0.1", 8443));
        let c = parse_relay("https://[::1]:9").unwrap();
        assert_eq!(c.to_string(), "[::1]:9");
        assert!(parse_relay("http://x").is_err());
        assert!(parse_relay("https://x/path").is_err());
        assert!(parse_relay("bifrost").is_err());
    }

    #[test]
    fn update_keys_and_the_default_feed() {
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(parse_update_key(&key).unwrap(), [7; 32]);
        let short = base64::engine::general_purpose::STANDARD.encode([7u8; 31]);
        assert!(parse_update_key(&short).is_err());
        assert!(parse_update_key("not base64!").is_err());
        let config = Config {
            relay: Some("https://b.example:8443".into()),
            update_keys: vec![key, "x".into()],
            ..Config::default()
        };
        assert!(config.validate().is_err());
        assert_eq!(
            config.feed_url().as_deref(),
            Some("https://b.example:8443/updates/feed.json")
        );
        assert_eq!(Config::default().feed_url(), None);
    }

    #[test]
    fn proxy_settings_are_checked_and_never_shown() {
        let config = Config {
            proxy: Some(ProxyUrl("http://alice:s3cret@proxy.corp:3128".into())),
            ..Config::default()
        };
        assert!(config.validate().is_ok());
        assert!(!format!("{config:?}").contains("s3cret"));
        let bad = Config {
            proxy: Some(ProxyUrl("socks5://proxy.corp".into())),
            ..Config::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn fingerprints() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_fingerprint(&hex).unwrap(), [0xab; 32]);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_fingerprint(&colons).unwrap(), [0xab; 32]);
        assert!(parse_fingerprint("abc").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn config_round_trips_and_refuses_unknown_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let config = Config {
            relay: Some("https://h:1".into()),
            shares: vec!["/srv".into()],
            ..Config::default()
        };
        config.save(&path).unwrap();
        assert_eq!(Config::load(&path).unwrap(), config);
        std::fs::write(&path, "relya = 'x'").unwrap();
        assert!(matches!(
            Config::load(&path),
            Err(ConfigError::Parse { .. })
        ));
    }
}
