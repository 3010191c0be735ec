//! Signed self-update: reads a release feed, decides whether a release may be installed, and
//! installs it only after its zipsign (ed25519) signature checks out against the embedded keys.
//!
//! The feed is a JSON document (schema 1 of `self_update`'s manifest, plus `minimum_version`):
//!
//! ```json
//! { "schema": 1, "minimum_version": "0.1.0",
//!   "releases": [ { "version": "0.2.0", "assets": [
//!     { "name": "mover-agent-desktop-0.2.0-x86_64-unknown-linux-gnu.tar.gz",
//!       "url": "mover-agent-desktop-0.2.0-x86_64-unknown-linux-gnu.tar.gz" } ] } ] }
//! ```
//!
//! An asset's name is `PRODUCT-VERSION-TARGET.tar.gz` exactly (`.zip` for Windows targets). zipsign binds the signature to the
//! file name, so a signed archive of an old version cannot be offered under a newer version's name.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use tokio::net::TcpStream;

use crate::config::Config;
use crate::proxy::Proxy;

pub use self_update::VerifyingKey;

/// How often a running agent or app looks for an update.
pub const CHECK_EVERY: Duration = Duration::from_secs(6 * 3600);
/// Largest feed document accepted.
const FEED_LIMIT: usize = 1 << 20;
/// Largest archive accepted.
const ARCHIVE_LIMIT: usize = 512 << 20;
/// Redirects followed (release hosts commonly redirect downloads to a CDN).
const MAX_REDIRECTS: usize = 5;
const HTTP_TIMEOUT: Duration = Duration::from_secs(300);

/// The release keys this build accepts; two during a key rotation. The private half never
/// enters the repository (see the README's release section).
pub const RELEASE_KEYS: &[VerifyingKey] =
    &[*include_bytes!("../release-keys/mover-release-2026-11.pub")];

/// Why an update check or install did not complete.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// The feed could not be fetched or read.
    #[error("update feed {url}: {reason}")]
    Feed {
        /// The feed's address.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The archive could not be downloaded.
    #[error("download of {url}: {reason}")]
    Download {
        /// The archive's address.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The release was refused; nothing was replaced.
    #[error("release {version} refused: {reason}")]
    Refused {
        /// The release's version.
        version: String,
        /// Why.
        reason: String,
    },
    /// The configured extra release keys cannot be read.
    #[error("update keys: {0}")]
    Keys(String),
    /// Installing failed; the installed binary is as it was.
    #[error("cannot install into {path}: {reason}")]
    Install {
        /// The install path.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// Who owns the installed files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallKind {
    /// The app's own files (a per-user install or an unpacked archive): it may replace them.
    Owned,
    /// A package manager's files: updates come through it.
    Package,
}

/// Where an executable's files come from, judged by where it lives.
pub fn install_kind(exe: &Path) -> InstallKind {
    // .deb and .rpm installs put binaries under /usr; a self-updating copy never lives there.
    if cfg!(unix) && exe.starts_with("/usr") {
        InstallKind::Package
    } else {
        InstallKind::Owned
    }
}

/// The release feed.
#[derive(Debug, Clone, Deserialize)]
pub struct Feed {
    /// Format version; 1.
    pub schema: u64,
    /// Releases older than this must not be installed.
    #[serde(default)]
    pub minimum_version: Option<String>,
    /// The releases, in any order.
    #[serde(default)]
    pub releases: Vec<FeedRelease>,
}

/// One release in the feed.
#[derive(Debug, Clone, Deserialize)]
pub struct FeedRelease {
    /// Semantic version, without a leading `v`.
    pub version: String,
    /// Its archives.
    #[serde(default)]
    pub assets: Vec<FeedAsset>,
}

/// One archive of a release.
#[derive(Debug, Clone, Deserialize)]
pub struct FeedAsset {
    /// File name: `PRODUCT-VERSION-TARGET.tar.gz` (`.zip` on Windows).
    pub name: String,
    /// Absolute URL, or relative to the feed's folder.
    pub url: String,
}

impl Feed {
    /// Parses a feed document.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let feed: Feed = serde_json::from_slice(body).map_err(|e| format!("not a feed: {e}"))?;
        if feed.schema != 1 {
            return Err(format!(
                "feed schema {} is not supported (this agent reads schema 1)",
                feed.schema
            ));
        }
        Ok(feed)
    }
}

/// A release that may be installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Its version.
    pub version: String,
    /// The archive's file name (the signature's context).
    pub asset_name: String,
    /// The archive's URL as the feed gives it.
    pub url: String,
}

/// What to do about a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing newer for this product and platform.
    UpToDate,
    /// A package manager owns the files.
    Managed,
    /// Newer, but a transfer is running: try again later.
    WaitForTransfer(Offer),
    /// Newer, but the feed itself says it may not be installed.
    Refuse {
        /// The release's version.
        version: String,
        /// Why.
        reason: String,
    },
    /// Download, verify and install this.
    Install(Offer),
}

/// The archive name a release of `product` for `target` must have: a zip for Windows (what its
/// admins open), a gzipped tar elsewhere (it keeps the executable bit).
pub fn asset_name(product: &str, version: &str, target: &str) -> String {
    let ext = if target.contains("windows") {
        "zip"
    } else {
        "tar.gz"
    };
    format!("{product}-{version}-{target}.{ext}")
}

fn newer(than: &str, version: &str) -> bool {
    self_update::version::bump_is_greater(than, version).unwrap_or(false)
}

/// Decides what to do about `feed`, for a `product` built for `target` at version `current`.
pub fn decide(
    current: &str,
    feed: &Feed,
    product: &str,
    target: &str,
    transferring: bool,
    kind: &InstallKind,
) -> Decision {
    if *kind == InstallKind::Package {
        return Decision::Managed;
    }
    // The newest release that is newer than this one and has an archive for this platform.
    let best = feed
        .releases
        .iter()
        .filter(|r| newer(current, &r.version))
        .filter_map(|r| {
            let name = asset_name(product, &r.version, target);
            r.assets.iter().find(|a| a.name == name).map(|a| Offer {
                version: r.version.clone(),
                asset_name: a.name.clone(),
                url: a.url.clone(),
            })
        })
        .reduce(|a, b| if newer(&a.version, &b.version) { b } else { a });
    let Some(offer) = best else {
        return Decision::UpToDate;
    };
    if let Some(min) = &feed.minimum_version {
        if newer(&offer.version, min) {
            return Decision::Refuse {
                version: offer.version,
                reason: format!("it is below the feed's minimum version {min}"),
            };
        }
    }
    if transferring {
        return Decision::WaitForTransfer(offer);
    }
    Decision::Install(offer)
}

/// Resolves an asset URL against the feed's address.
pub fn resolve(feed_url: &str, asset_url: &str) -> String {
    if asset_url.starts_with("https://") || asset_url.starts_with("http://") {
        return asset_url.to_owned();
    }
    match feed_url.rfind('/') {
        Some(i) => format!("{}{}", &feed_url[..=i], asset_url.trim_start_matches('/')),
        None => asset_url.to_owned(),
    }
}

/// What an update check did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to install.
    UpToDate,
    /// A package manager owns the files.
    Managed,
    /// A newer version waits for the running transfer to end.
    Waiting(String),
    /// This version was installed; restart to run it.
    Installed(String),
}

/// Checks a feed and installs a newer release of one binary.
#[derive(Debug, Clone)]
pub struct Updater {
    /// The feed's address.
    pub feed_url: String,
    /// The product (binary) name, as in asset names.
    pub product: String,
    /// The target triple, as in asset names.
    pub target: String,
    /// The running version.
    pub current_version: String,
    /// The binary to replace.
    pub install_path: PathBuf,
    /// The binary's path inside the archive.
    pub path_in_archive: String,
    /// Accepted signing keys; never empty.
    pub keys: Vec<VerifyingKey>,
    /// Trust settings: a feed on the Bifrost the agent uses is trusted as the tunnel trusts it.
    pub config: Config,
    /// Versions not to install again (they were rolled back).
    pub skip_versions: Vec<String>,
}

impl Updater {
    /// An updater for the running executable, trusting the built-in release keys and the
    /// config's `update_keys`.
    pub fn for_current_exe(
        feed_url: &str,
        product: &str,
        path_in_archive: &str,
        config: Config,
    ) -> Result<Self, UpdateError> {
        let exe = std::env::current_exe().map_err(|e| UpdateError::Install {
            path: "the running executable".into(),
            reason: e.to_string(),
        })?;
        let mut keys = RELEASE_KEYS.to_vec();
        keys.extend(
            config
                .extra_update_keys()
                .map_err(|e| UpdateError::Keys(e.to_string()))?,
        );
        Ok(Self {
            feed_url: feed_url.to_owned(),
            product: product.to_owned(),
            target: self_update::get_target().to_owned(),
            current_version: crate::VERSION.to_owned(),
            install_path: exe,
            path_in_archive: path_in_archive.to_owned(),
            keys,
            config,
            skip_versions: Vec::new(),
        })
    }

    /// Fetches the feed, decides, and installs a newer release; `transferring` is asked just
    /// before the download and again before the binary is replaced.
    pub async fn run(&self, transferring: impl Fn() -> bool) -> Result<Outcome, UpdateError> {
        let kind = install_kind(&self.install_path);
        if kind == InstallKind::Package {
            return Ok(Outcome::Managed);
        }
        let feed_err = |reason: String| UpdateError::Feed {
            url: self.feed_url.clone(),
            reason,
        };
        let body = get(&self.feed_url, &self.config, FEED_LIMIT)
            .await
            .map_err(feed_err)?;
        let mut feed = Feed::parse(&body).map_err(feed_err)?;
        feed.releases
            .retain(|r| !self.skip_versions.contains(&r.version));
        let offer = match decide(
            &self.current_version,
            &feed,
            &self.product,
            &self.target,
            transferring(),
            &kind,
        ) {
            Decision::UpToDate => return Ok(Outcome::UpToDate),
            Decision::Managed => return Ok(Outcome::Managed),
            Decision::WaitForTransfer(o) => return Ok(Outcome::Waiting(o.version)),
            Decision::Refuse { version, reason } => {
                return Err(UpdateError::Refused { version, reason })
            }
            Decision::Install(o) => o,
        };
        let url = resolve(&self.feed_url, &offer.url);
        tracing::info!(version = %offer.version, %url, "downloading an update");
        let archive = get(&url, &self.config, ARCHIVE_LIMIT)
            .await
            .map_err(|reason| UpdateError::Download {
                url: url.clone(),
                reason,
            })?;
        if transferring() {
            return Ok(Outcome::Waiting(offer.version));
        }
        let this = self.clone();
        let version = offer.version.clone();
        tokio::task::spawn_blocking(move || this.install(&offer, &archive))
            .await
            .map_err(|e| UpdateError::Install {
                path: self.install_path.display().to_string(),
                reason: e.to_string(),
            })??;
        tracing::info!(%version, path = %self.install_path.display(), "update installed");
        Ok(Outcome::Installed(version))
    }

    /// Verifies `archive` and puts its binary in place of the installed one, keeping the
    /// previous binary beside it as `.NAME.previous`.
    pub fn install(&self, offer: &Offer, archive: &[u8]) -> Result<(), UpdateError> {
        let refused = |reason: String| UpdateError::Refused {
            version: offer.version.clone(),
            reason,
        };
        let install_err = |reason: String| UpdateError::Install {
            path: self.install_path.display().to_string(),
            reason,
        };
        // `self_update` treats an empty key list as "nothing to verify": never let that happen.
        if self.keys.is_empty() {
            return Err(refused(
                "this build has no release keys to verify with".into(),
            ));
        }
        let dir = self
            .install_path
            .parent()
            .ok_or_else(|| install_err("has no parent folder".into()))?;
        // Staged beside the binary, so the final step is a rename on one filesystem.
        let staging = tempfile::Builder::new()
            .prefix(".mover-update-")
            .tempdir_in(dir)
            .map_err(|e| install_err(e.to_string()))?;
        let archive_path = staging.path().join(&offer.asset_name);
        std::fs::write(&archive_path, archive).map_err(|e| install_err(e.to_string()))?;
        self_update::verify_signature(&archive_path, &self.keys)
            .map_err(|e| refused(format!("signature check failed: {e}")))?;
        let unpacked = staging.path().join("unpacked");
        std::fs::create_dir(&unpacked).map_err(|e| install_err(e.to_string()))?;
        self_update::Extract::from_source(&archive_path)
            .extract_file(&unpacked, &self.path_in_archive)
            .map_err(|e| refused(format!("the archive has no {}: {e}", self.path_in_archive)))?;
        // Extraction keeps the entry's folders (`moveragent/agent` lands in `moveragent/`).
        let new_bin = unpacked.join(&self.path_in_archive);
        if !new_bin.is_file() {
            return Err(refused(format!(
                "the archive's {} is not a file",
                self.path_in_archive
            )));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&new_bin, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| install_err(e.to_string()))?;
        }
        let previous = previous_path(&self.install_path);
        // Windows cannot rename over an existing file.
        let _ = std::fs::remove_file(&previous);
        self_update::Move::from_source(&new_bin)
            .replace_using_temp(&previous)
            .to_dest(&self.install_path)
            .map_err(|e| install_err(e.to_string()))?;
        Ok(())
    }
}

/// Where the binary replaced by an update is kept (for a rollback).
pub fn previous_path(install_path: &Path) -> PathBuf {
    let name = install_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    install_path.with_file_name(format!(".{name}.previous"))
}

/// GETs `url` (http or https, through `HTTPS_PROXY` when set), following redirects.
async fn get(url: &str, config: &Config, limit: usize) -> Result<Bytes, String> {
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

fn resolve_redirect(from: &str, to: &str) -> String {
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

    const T: &str = "x86_64-unknown-linux-gnu";

    fn feed(min: Option<&str>, versions: &[&str]) -> Feed {
        Feed {
            schema: 1,
            minimum_version: min.map(str::to_owned),
            releases: versions
                .iter()
                .map(|v| FeedRelease {
                    version: (*v).to_owned(),
                    assets: vec![FeedAsset {
                        name: asset_name("app", v, T),
                        url: asset_name("app", v, T),
                    }],
                })
                .collect(),
        }
    }

    fn install(v: &str) -> Decision {
        Decision::Install(Offer {
            version: v.into(),
            asset_name: asset_name("app", v, T),
            url: asset_name("app", v, T),
        })
    }

    #[test]
    fn picks_the_newest_newer_release() {
        let f = feed(None, &["0.2.0", "0.3.1", "0.1.0", "0.3.0"]);
        assert_eq!(
            decide("0.2.0", &f, "app", T, false, &InstallKind::Owned),
            install("0.3.1")
        );
    }

    #[test]
    fn older_and_equal_releases_are_not_installed() {
        let f = feed(None, &["0.1.0", "0.2.0"]);
        assert_eq!(
            decide("0.2.0", &f, "app", T, false, &InstallKind::Owned),
            Decision::UpToDate
        );
        assert_eq!(
            decide("1.0.0", &f, "app", T, false, &InstallKind::Owned),
            Decision::UpToDate
        );
    }

    #[test]
    fn other_platforms_and_products_and_misnamed_assets_are_ignored() {
        let mut f = feed(None, &["0.3.0"]);
        f.releases[0].assets = vec![
            FeedAsset {
                name: asset_name("app", "0.3.0", "aarch64-apple-darwin"),
                url: "a".into(),
            },
            FeedAsset {
                name: asset_name("other", "0.3.0", T),
                url: "b".into(),
            },
            // An old archive offered under a new version: its name does not match.
            FeedAsset {
                name: asset_name("app", "0.1.0", T),
                url: "c".into(),
            },
        ];
        assert_eq!(
            decide("0.2.0", &f, "app", T, false, &InstallKind::Owned),
            Decision::UpToDate
        );
    }

    #[test]
    fn waits_for_transfers_and_leaves_packages_alone() {
        let f = feed(None, &["0.3.0"]);
        assert!(matches!(
            decide("0.2.0", &f, "app", T, true, &InstallKind::Owned),
            Decision::WaitForTransfer(o) if o.version == "0.3.0"
        ));
        assert_eq!(
            decide("0.2.0", &f, "app", T, false, &InstallKind::Package),
            Decision::Managed
        );
    }

    #[test]
    fn releases_below_the_minimum_are_refused() {
        let f = feed(Some("0.4.0"), &["0.3.0"]);
        assert!(matches!(
            decide("0.2.0", &f, "app", T, false, &InstallKind::Owned),
            Decision::Refuse { version, .. } if version == "0.3.0"
        ));
        let f = feed(Some("0.3.0"), &["0.3.0"]);
        assert_eq!(
            decide("0.2.0", &f, "app", T, false, &InstallKind::Owned),
            install("0.3.0")
        );
    }

    #[test]
    fn non_semver_versions_are_skipped() {
        let f = feed(None, &["nightly", "0.3.0"]);
        assert_eq!(
            decide("0.2.0", &f, "app", T, false, &InstallKind::Owned),
            install("0.3.0")
        );
    }

    #[test]
    fn feeds_parse_and_unknown_schemas_are_refused() {
        let f =
            Feed::parse(br#"{"schema":1,"releases":[{"version":"1.0.0","assets":[]}],"extra":1}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.releases.len(), 1);
        assert!(Feed::parse(br#"{"schema":2,"releases":[]}"#)
            .unwrap_err()
            .contains("schema 2"));
        assert!(Feed::parse(b"<html>").is_err());
    }

    #[test]
    fn urls_resolve_against_the_feed() {
        assert_eq!(
            resolve("https://h:8443/updates/feed.json", "a.tar.gz"),
            "https://h:8443/updates/a.tar.gz"
        );
        assert_eq!(
            resolve("https://h/updates/feed.json", "https://cdn/x"),
            "https://cdn/x"
        );
        assert_eq!(
            resolve_redirect("https://h/updates/feed.json", "/other/x"),
            "https://h/other/x"
        );
    }

    #[test]
    fn package_installs_are_recognized() {
        if cfg!(unix) {
            assert_eq!(
                install_kind(Path::new("/usr/bin/mover-agent-desktop")),
                InstallKind::Package
            );
        }
        assert_eq!(
            install_kind(Path::new("/home/u/.local/bin/agent")),
            InstallKind::Owned
        );
    }

    #[test]
    fn the_build_has_release_keys() {
        assert!(!RELEASE_KEYS.is_empty());
    }
}
