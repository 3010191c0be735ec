//! The release feed and the decision it leads to: which release, if any, this binary may
//! install. Pure functions, tested without a network.

use std::path::Path;

use serde::Deserialize;

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
        assert!(!super::super::RELEASE_KEYS.is_empty());
    }
}
