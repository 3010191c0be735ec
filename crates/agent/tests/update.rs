//! The updater end to end: a loopback HTTP server serves a feed and archives signed here; the
//! updater installs into a temporary install folder or refuses and leaves it as it was.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, Mutex};

use mover_agent::update::{asset_name, Outcome, UpdateError, Updater, VerifyingKey};
use mover_agent::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zipsign_api::SigningKey;

const TARGET: &str = "x86_64-unknown-linux-gnu";
const PRODUCT: &str = "mover-agent-desktop";

type Files = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// A minimal HTTP/1.1 file server: GET /NAME answers the bytes stored under NAME, else 404.
async fn serve(files: Files) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let files = files.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf);
                let path = head
                    .split(' ')
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/');
                let body = files.lock().unwrap().get(path).cloned();
                let reply = match body {
                    Some(b) => [
                        format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", b.len())
                            .into_bytes(),
                        b,
                    ]
                    .concat(),
                    None => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec(),
                };
                let _ = sock.write_all(&reply).await;
            });
        }
    });
    format!("http://{addr}")
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn public(k: &SigningKey) -> VerifyingKey {
    k.verifying_key().to_bytes()
}

/// A .tar.gz holding `bin` with `content`.
fn archive(bin: &str, content: &[u8]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    tar.append_data(&mut header, bin, content).unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

/// `archive`, signed by `keys` for the file name `name` (zipsign binds the name).
fn signed(name: &str, content: &[u8], keys: &[SigningKey]) -> Vec<u8> {
    let plain = archive(PRODUCT, content);
    let mut out = Cursor::new(Vec::new());
    zipsign_api::sign::copy_and_sign_tar(
        &mut Cursor::new(plain),
        &mut out,
        keys,
        Some(name.as_bytes()),
    )
    .unwrap();
    out.into_inner()
}

fn feed(versions: &[&str], minimum: Option<&str>) -> Vec<u8> {
    let releases: Vec<_> = versions
        .iter()
        .map(|v| {
            let name = asset_name(PRODUCT, v, TARGET);
            serde_json::json!({ "version": v, "assets": [{ "name": name, "url": name }] })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schema": 1, "minimum_version": minimum, "releases": releases
    }))
    .unwrap()
}

struct Setup {
    _dir: tempfile::TempDir,
    files: Files,
    updater: Updater,
}

impl Setup {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let install = dir.path().join("install");
        std::fs::create_dir(&install).unwrap();
        let bin = install.join(PRODUCT);
        std::fs::write(&bin, b"version 0.1.0").unwrap();
        let files: Files = Arc::default();
        let base = serve(files.clone()).await;
        let updater = Updater {
            feed_url: format!("{base}/feed.json"),
            product: PRODUCT.into(),
            target: TARGET.into(),
            current_version: "0.1.0".into(),
            install_path: bin,
            path_in_archive: PRODUCT.into(),
            keys: vec![public(&key(1))],
            config: Config::default(),
            skip_versions: Vec::new(),
        };
        Self {
            _dir: dir,
            files,
            updater,
        }
    }

    fn put(&self, name: &str, bytes: Vec<u8>) {
        self.files.lock().unwrap().insert(name.into(), bytes);
    }

    /// Offers `version` with these archive bytes.
    fn offer(&self, version: &str, bytes: Vec<u8>) {
        self.put("feed.json", feed(&[version], None));
        self.put(&asset_name(PRODUCT, version, TARGET), bytes);
    }

    fn installed(&self) -> Vec<u8> {
        std::fs::read(&self.updater.install_path).unwrap()
    }

    /// Only the binary is left in the install folder: no staging leftovers.
    fn assert_clean(&self, with_previous: bool) {
        let dir = self.updater.install_path.parent().unwrap();
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // The update lock file stays: removing a lock file others may open is a race.
        names.retain(|n| *n != format!(".{PRODUCT}.update-lock"));
        let mut want = vec![PRODUCT.to_owned()];
        if with_previous {
            want.insert(0, format!(".{PRODUCT}.previous"));
        }
        assert_eq!(names, want);
    }

    async fn refused(&self) -> String {
        match self.updater.run(|| false).await {
            Err(UpdateError::Refused { reason, .. }) => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_signed_newer_release_is_installed() {
    let s = Setup::new().await;
    let name = asset_name(PRODUCT, "0.2.0", TARGET);
    s.offer("0.2.0", signed(&name, b"version 0.2.0", &[key(1)]));
    let Outcome::Installed(trial) = s.updater.run(|| false).await.unwrap() else {
        panic!("not installed");
    };
    assert_eq!(trial.version(), "0.2.0");
    // On trial: it runs from `.next`; the installed binary is still the old one.
    assert_eq!(s.installed(), b"version 0.1.0");
    assert_eq!(std::fs::read(trial.candidate()).unwrap(), b"version 0.2.0");
    assert_eq!(mode(&trial.candidate()), 0o755);
    trial.commit().unwrap();
    assert_eq!(s.installed(), b"version 0.2.0");
    assert_eq!(mode(&s.updater.install_path), 0o755);
    let previous = mover_agent::update::previous_path(&s.updater.install_path);
    assert_eq!(std::fs::read(previous).unwrap(), b"version 0.1.0");
    s.assert_clean(true);
}

#[tokio::test]
async fn a_release_signed_by_a_rotated_in_key_is_installed() {
    let mut s = Setup::new().await;
    s.updater.keys.push(public(&key(2)));
    let name = asset_name(PRODUCT, "0.2.0", TARGET);
    s.offer("0.2.0", signed(&name, b"version 0.2.0", &[key(2)]));
    assert!(matches!(
        s.updater.run(|| false).await,
        Ok(Outcome::Installed(_))
    ));
}

#[tokio::test]
async fn a_tampered_archive_is_refused() {
    let s = Setup::new().await;
    let name = asset_name(PRODUCT, "0.2.0", TARGET);
    let mut bytes = signed(&name, b"version 0.2.0", &[key(1)]);
    let last = bytes.len() - 20;
    bytes[last] ^= 0x55;
    s.offer("0.2.0", bytes);
    assert!(s.refused().await.contains("signature"));
    assert_eq!(s.installed(), b"version 0.1.0");
    s.assert_clean(false);
}

#[tokio::test]
async fn an_unsigned_archive_is_refused() {
    let s = Setup::new().await;
    s.offer("0.2.0", archive(PRODUCT, b"version 0.2.0"));
    assert!(s.refused().await.contains("signature"));
    assert_eq!(s.installed(), b"version 0.1.0");
    s.assert_clean(false);
}

#[tokio::test]
async fn an_archive_signed_by_another_key_is_refused() {
    let s = Setup::new().await;
    let name = asset_name(PRODUCT, "0.2.0", TARGET);
    s.offer("0.2.0", signed(&name, b"version 0.2.0", &[key(9)]));
    assert!(s.refused().await.contains("signature"));
    assert_eq!(s.installed(), b"version 0.1.0");
}

#[tokio::test]
async fn an_old_signed_archive_renamed_as_new_is_refused() {
    let s = Setup::new().await;
    // Signed as 0.0.9, offered as 0.2.0: the signature covers the file name.
    let old = signed(
        &asset_name(PRODUCT, "0.0.9", TARGET),
        b"version 0.0.9",
        &[key(1)],
    );
    s.offer("0.2.0", old);
    assert!(s.refused().await.contains("signature"));
    assert_eq!(s.installed(), b"version 0.1.0");
}

#[tokio::test]
async fn older_releases_and_releases_below_the_minimum_are_not_installed() {
    let s = Setup::new().await;
    let name = asset_name(PRODUCT, "0.0.9", TARGET);
    s.offer("0.0.9", signed(&name, b"version 0.0.9", &[key(1)]));
    assert!(matches!(
        s.updater.run(|| false).await.unwrap(),
        Outcome::UpToDate
    ));
    assert_eq!(s.installed(), b"version 0.1.0");

    let name = asset_name(PRODUCT, "0.2.0", TARGET);
    s.put("feed.json", feed(&["0.2.0"], Some("0.3.0")));
    s.put(&name, signed(&name, b"version 0.2.0", &[key(1)]));
    assert!(s.refused().await.contains("minimum version 0.3.0"));
    assert_eq!(s.installed(), b"version 0.1.0");
    s.assert_clean(false);
}

#[tokio::test]
async fn nothing_is_installed_while_a_transfer_runs() {
    let s = Setup::new().await;
    let name = asset_name(PRODUCT, "0.2.0", TARGET);
    s.offer("0.2.0", signed(&name, b"version 0.2.0", &[key(1)]));
    assert!(matches!(
        s.updater.run(|| true).await.unwrap(),
        Outcome::Waiting(v) if v == "0.2.0"
    ));
    assert_eq!(s.installed(), b"version 0.1.0");
}

#[tokio::test]
async fn an_empty_key_list_never_passes() {
    let mut s = Setup::new().await;
    s.updater.keys.clear();
    s.offer("0.2.0", archive(PRODUCT, b"version 0.2.0"));
    assert!(s.refused().await.contains("no release keys"));
    assert_eq!(s.installed(), b"version 0.1.0");
}

#[tokio::test]
async fn feed_errors_are_specific() {
    let s = Setup::new().await;
    let err = s.updater.run(|| false).await.unwrap_err().to_string();
    assert!(err.contains("HTTP 404"), "{err}");
    s.put("feed.json", b"<html>".to_vec());
    let err = s.updater.run(|| false).await.unwrap_err().to_string();
    assert!(err.contains("not a feed"), "{err}");
    // A feed pointing at a missing archive.
    s.put("feed.json", feed(&["0.2.0"], None));
    let err = s.updater.run(|| false).await.unwrap_err().to_string();
    assert!(err.starts_with("download of"), "{err}");
    assert_eq!(s.installed(), b"version 0.1.0");
}
