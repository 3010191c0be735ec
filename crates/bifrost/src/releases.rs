//! Hosting agent releases: signed archives in `DATA/releases` and the update feed listing them,
//! served under `/updates/` so agents update from their own Bifrost without internet access.
//!
//! Bifrost only hosts: the agents verify each archive's zipsign signature against the keys
//! built into them, so a tampered archive placed here is refused where it matters.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use axum::extract::{Path as UrlPath, State};
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use serde::{Deserialize, Serialize};

use crate::App;

/// The feed's file name, in the releases folder and under `/updates/`.
pub const FEED: &str = "feed.json";

/// First parts of the target triples releases are built for.
const ARCHES: &[&str] = &[
    "x86_64",
    "aarch64",
    "i686",
    "i586",
    "armv7",
    "arm",
    "riscv64gc",
    "powerpc64le",
    "s390x",
    "universal2",
];

/// An archive's name taken apart: `PRODUCT-VERSION-TARGET.tar.gz` or `.zip`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveName {
    /// The product, e.g. `moveragent` or `mover-agent-desktop`.
    pub product: String,
    /// Its version (`MAJOR.MINOR.PATCH`).
    pub version: semver::Version,
    /// The target triple.
    pub target: String,
}

impl ArchiveName {
    /// Parses a file name; the version is the first dash-separated part that is a version.
    pub fn parse(name: &str) -> Result<Self, String> {
        let stem = name
            .strip_suffix(".tar.gz")
            .or_else(|| name.strip_suffix(".zip"))
            .ok_or_else(|| format!("{name}: a release archive ends in .tar.gz or .zip"))?;
        if name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(format!("{name}: not a plain file name"));
        }
        let expected = || {
            format!(
                "{name}: expected PRODUCT-VERSION-TARGET (like moveragent-1.2.0-x86_64-unknown-linux-gnu.tar.gz)"
            )
        };
        let parts: Vec<&str> = stem.split('-').collect();
        // The target triple starts at the last part naming a CPU; the version (which may have
        // a pre-release like `-rc.1`) runs from the first part that starts one up to it.
        let target_at = parts
            .iter()
            .rposition(|p| ARCHES.contains(p))
            .ok_or_else(expected)?;
        let version_at = parts[..target_at]
            .iter()
            .position(|p| semver::Version::parse(p).is_ok())
            .ok_or_else(expected)?;
        if version_at == 0 {
            return Err(expected());
        }
        let version = parts[version_at..target_at].join("-");
        Ok(Self {
            product: parts[..version_at].join("-"),
            version: semver::Version::parse(&version).map_err(|e| format!("{name}: {e}"))?,
            target: parts[target_at..].join("-"),
        })
    }
}

/// The feed document (what `mover_agent::update::Feed` reads).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Feed {
    /// Format version: 1.
    pub schema: u64,
    /// Releases older than this must not be installed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_version: Option<String>,
    /// Newest first.
    pub releases: Vec<Release>,
}

/// One version in the feed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Release {
    /// The version.
    pub version: String,
    /// Its archives.
    pub assets: Vec<Asset>,
}

/// One archive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Asset {
    /// File name (the signature's context).
    pub name: String,
    /// Relative to the feed.
    pub url: String,
}

/// Builds the feed for the archives in `dir`, keeping `dir`'s current minimum version unless
/// `minimum` replaces it.
pub fn build_feed(dir: &Path, minimum: Option<&str>) -> anyhow::Result<Feed> {
    let minimum = match minimum {
        Some(m) => {
            semver::Version::parse(m)
                .with_context(|| format!("minimum version {m:?} is not MAJOR.MINOR.PATCH"))?;
            Some(m.to_owned())
        }
        None => read_feed(dir)?.and_then(|f| f.minimum_version),
    };
    let mut by_version: std::collections::BTreeMap<semver::Version, Vec<Asset>> =
        Default::default();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(parsed) = ArchiveName::parse(&name) else {
            continue;
        };
        by_version.entry(parsed.version).or_default().push(Asset {
            url: name.clone(),
            name,
        });
    }
    let releases = by_version
        .into_iter()
        .rev()
        .map(|(version, mut assets)| {
            assets.sort_by(|a, b| a.name.cmp(&b.name));
            Release {
                version: version.to_string(),
                assets,
            }
        })
        .collect();
    Ok(Feed {
        schema: 1,
        minimum_version: minimum,
        releases,
    })
}

fn read_feed(dir: &Path) -> anyhow::Result<Option<Feed>> {
    let path = dir.join(FEED);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .with_context(|| format!("{} is not a feed", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes `dir/feed.json` for the archives in `dir` (for hosting on any web server too).
pub fn write_feed(dir: &Path, minimum: Option<&str>) -> anyhow::Result<Feed> {
    let feed = build_feed(dir, minimum)?;
    let body = serde_json::to_vec_pretty(&feed)?;
    write_atomic(&dir.join(FEED), &body)?;
    Ok(feed)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Where a Bifrost keeps its hosted releases.
pub fn dir(data: &Path) -> PathBuf {
    data.join("releases")
}

/// Copies `archives` into `dir` and rewrites the feed; names are checked before anything is
/// copied, so a bad one changes nothing.
pub fn add(dir: &Path, archives: &[PathBuf], minimum: Option<&str>) -> anyhow::Result<Feed> {
    let mut names = Vec::new();
    for archive in archives {
        let name = archive
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .with_context(|| format!("{} is not a file", archive.display()))?;
        ArchiveName::parse(&name).map_err(anyhow::Error::msg)?;
        if !archive.is_file() {
            bail!("{} is not a file", archive.display());
        }
        names.push(name);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (archive, name) in archives.iter().zip(&names) {
        let bytes =
            std::fs::read(archive).with_context(|| format!("cannot read {}", archive.display()))?;
        write_atomic(&dir.join(name), &bytes)?;
    }
    write_feed(dir, minimum)
}

/// `GET /updates/{name}`: the feed or one archive. No session needed: agents fetch these, and
/// what they fetch is public and signed.
pub async fn serve(State(app): State<Arc<App>>, UrlPath(name): UrlPath<String>) -> Response {
    let content_type = if name == FEED {
        "application/json"
    } else {
        match ArchiveName::parse(&name) {
            Ok(_) if name.ends_with(".zip") => "application/zip",
            Ok(_) => "application/gzip",
            Err(_) => return (StatusCode::NOT_FOUND, "no such release file").into_response(),
        }
    };
    // Streamed from the file, not read into memory: any client may ask, as often as it likes.
    let opened = match tokio::fs::File::open(app.releases.join(&name)).await {
        Ok(file) => file.metadata().await.map(|m| (file, m.len())),
        Err(e) => Err(e),
    };
    match opened {
        Ok((file, len)) => (
            [
                (header::CONTENT_TYPE, content_type.to_owned()),
                (header::CACHE_CONTROL, "no-cache".to_owned()),
                (header::CONTENT_LENGTH, len.to_string()),
            ],
            axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file)),
        )
            .into_response(),
        // Nothing hosted yet: agents are up to date rather than failing their check.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && name == FEED => (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"schema":1,"releases":[]}"#,
        )
            .into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            (StatusCode::NOT_FOUND, "no such release file").into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, %name, "cannot read a release file");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the release file",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_parse() {
        let a = ArchiveName::parse("mover-agent-desktop-0.2.0-x86_64-unknown-linux-gnu.tar.gz")
            .unwrap();
        assert_eq!(a.product, "mover-agent-desktop");
        assert_eq!(a.version.to_string(), "0.2.0");
        assert_eq!(a.target, "x86_64-unknown-linux-gnu");
        let w = ArchiveName::parse("moveragent-1.10.3-x86_64-pc-windows-gnu.zip").unwrap();
        assert_eq!(
            (w.product.as_str(), w.target.as_str()),
            ("moveragent", "x86_64-pc-windows-gnu")
        );
        let rc = ArchiveName::parse("mover-agent-desktop-0.2.0-rc.1-aarch64-apple-darwin.tar.gz")
            .unwrap();
        assert_eq!(rc.product, "mover-agent-desktop");
        assert_eq!(rc.version.to_string(), "0.2.0-rc.1");
        assert_eq!(rc.target, "aarch64-apple-darwin");
        for bad in [
            "moveragent-1.0.0-x86_64-unknown-linux-gnu.tar",
            "moveragent-x86_64-unknown-linux-gnu.tar.gz",
            "1.0.0-x86_64.tar.gz",
            "moveragent-1.0.0.tar.gz",
            "../moveragent-1.0.0-x.tar.gz",
            ".moveragent-1.0.0-x.tar.gz",
        ] {
            assert!(ArchiveName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_feed_lists_archives_newest_first_and_keeps_its_minimum() {
        let src = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mk = |n: &str| {
            let p = src.path().join(n);
            std::fs::write(&p, n).unwrap();
            p
        };
        let first = [
            mk("moveragent-0.2.0-x86_64-unknown-linux-gnu.tar.gz"),
            mk("moveragent-0.10.0-x86_64-unknown-linux-gnu.tar.gz"),
            mk("moveragent-0.10.0-x86_64-pc-windows-gnu.zip"),
        ];
        let feed = add(dir.path(), &first, Some("0.2.0")).unwrap();
        let versions: Vec<_> = feed.releases.iter().map(|r| r.version.as_str()).collect();
        assert_eq!(versions, ["0.10.0", "0.2.0"]);
        assert_eq!(feed.releases[0].assets.len(), 2);
        let feed = add(
            dir.path(),
            &[mk("moveragent-0.11.0-x86_64-unknown-linux-gnu.tar.gz")],
            None,
        )
        .unwrap();
        assert_eq!(feed.minimum_version.as_deref(), Some("0.2.0"));
        assert_eq!(feed.releases[0].version, "0.11.0");
        let on_disk: Feed =
            serde_json::from_slice(&std::fs::read(dir.path().join(FEED)).unwrap()).unwrap();
        assert_eq!(on_disk, feed);
        // A bad name anywhere in the list copies nothing.
        let err = add(
            dir.path(),
            &[
                mk("moveragent-0.12.0-x86_64-unknown-linux-gnu.tar.gz"),
                mk("notes.txt"),
            ],
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("notes.txt"), "{err}");
        assert!(!dir
            .path()
            .join("moveragent-0.12.0-x86_64-unknown-linux-gnu.tar.gz")
            .exists());
        assert!(add(dir.path(), &[], Some("one")).is_err());
    }
}
