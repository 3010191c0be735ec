//! Credentials sealed at rest: ChaCha20-Poly1305 (ring) with a 32-byte key in
//! `DATA/destinations.key` (mode 0600, made on first use), a random nonce per seal and the
//! destination's id as associated data, so a sealed blob copied onto another row does not open.
//!
//! A sealed blob is `1 || nonce (12 bytes) || ciphertext || tag (16 bytes)`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};

/// The format byte of a sealed blob.
const VERSION: u8 = 1;
const KEY_LEN: usize = 32;

/// Why credentials could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key file could not be read or made.
    #[error("the destinations key {path}: {why}")]
    Key {
        /// The key file.
        path: String,
        /// What failed.
        why: String,
    },
    /// The key file holds something that is not a key.
    #[error("the destinations key {0} is damaged: restore it from the backup taken with the database (without it the stored credentials cannot be opened; enter them again)")]
    Damaged(String),
    /// The OS random source failed.
    #[error("the OS random source failed: {0}")]
    Random(String),
    /// The blob does not open with this key and id: another key, another row, or tampered.
    #[error("the stored credentials do not open with {0}: it is not the key they were sealed with, or the database was altered; enter the credentials again")]
    Open(String),
}

/// The key of `DATA/destinations.key`, read (or made) on first use. `Debug` shows only its path.
pub struct Keyring {
    path: PathBuf,
    key: Mutex<Option<[u8; KEY_LEN]>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// The keyring of data folder `data` (nothing is read until the first seal or open).
    pub fn new(data: &Path) -> Self {
        Self {
            path: data.join("destinations.key"),
            key: Mutex::new(None),
        }
    }

    /// Where the key lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn key(&self) -> Result<LessSafeKey, SealError> {
        let mut cached = self.key.lock().unwrap_or_else(|e| e.into_inner());
        let bytes = match *cached {
            Some(k) => k,
            None => {
                let k = load_or_create(&self.path)?;
                *cached = Some(k);
                k
            }
        };
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &bytes)
            .map_err(|_| SealError::Damaged(self.path.display().to_string()))?;
        Ok(LessSafeKey::new(unbound))
    }

    /// Seals `plain` for the destination `id`.
    pub fn seal(&self, id: &str, plain: &[u8]) -> Result<Vec<u8>, SealError> {
        let key = self.key()?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SealError::Random(e.to_string()))?;
        let mut body = plain.to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(id.as_bytes()),
            &mut body,
        )
        .map_err(|_| SealError::Random("sealing failed".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + body.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Opens what [`Keyring::seal`] sealed for the destination `id`.
    pub fn open(&self, id: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let key = self.key()?;
        let refused = || SealError::Open(self.path.display().to_string());
        let rest = match sealed.split_first() {
            Some((&VERSION, rest)) if rest.len() >= NONCE_LEN => rest,
            _ => return Err(refused()),
        };
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| refused())?;
        let mut body = body.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(id.as_bytes()), &mut body)
            .map_err(|_| refused())?;
        Ok(plain.to_vec())
    }
}

/// Reads the key (64 hex characters), or makes one with mode 0600 from the start: it is never
/// readable by others, not even for a moment.
fn load_or_create(path: &Path) -> Result<[u8; KEY_LEN], SealError> {
    let failed = |e: std::io::Error| SealError::Key {
        path: path.display().to_string(),
        why: e.to_string(),
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            return parse(text.trim()).ok_or(SealError::Damaged(path.display().to_string()))
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(failed(e)),
        Err(_) => {}
    }
    let mut key = [0u8; KEY_LEN];
    getrandom::fill(&mut key).map_err(|e| SealError::Random(e.to_string()))?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut f) => {
            f.write_all(format!("{hex}\n").as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(failed)?;
            tracing::info!(path = %path.display(), "made the key that seals destination credentials; back it up with the database");
            Ok(key)
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).map_err(failed)?;
            parse(text.trim()).ok_or(SealError::Damaged(path.display().to_string()))
        }
        Err(e) => Err(failed(e)),
    }
}

fn parse(hex: &str) -> Option<[u8; KEY_LEN]> {
    if hex.len() != KEY_LEN * 2 || !hex.is_ascii() {
        return None;
    }
    let mut key = [0u8; KEY_LEN];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sealed_credentials_open_with_the_same_key_and_id_only() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::new(dir.path());
        let sealed = ring.seal("d1", b"CANARY-secret").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"CANARY"));
        assert_eq!(ring.open("d1", &sealed).unwrap(), b"CANARY-secret");
        // Another nonce each time.
        assert_ne!(ring.seal("d1", b"CANARY-secret").unwrap(), sealed);
        // The id is the associated data: a blob moved to another row does not open.
        assert!(matches!(ring.open("d2", &sealed), Err(SealError::Open(_))));
        // A fresh process reads the same key from the file.
        let again = Keyring::new(dir.path());
        assert_eq!(again.open("d1", &sealed).unwrap(), b"CANARY-secret");
    }

    #[test]
    fn a_tampered_or_truncated_blob_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::new(dir.path());
        let sealed = ring.seal("d1", b"secret").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(ring.open("d1", &bad).is_err(), "byte {i} flipped");
        }
        assert!(ring.open("d1", &sealed[..sealed.len() - 1]).is_err());
        assert!(ring.open("d1", &[]).is_err());
        // Another key.
        let other = tempfile::tempdir().unwrap();
        assert!(Keyring::new(other.path()).open("d1", &sealed).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_made_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::new(dir.path());
        assert!(!ring.path().exists(), "made before first use");
        ring.seal("d", b"x").unwrap();
        let mode = std::fs::metadata(ring.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(ring.path()).unwrap().trim().len(),
            64
        );
    }

    #[test]
    fn a_damaged_key_file_says_so() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("destinations.key"), "not a key\n").unwrap();
        let e = Keyring::new(dir.path()).seal("d", b"x").unwrap_err();
        assert!(matches!(e, SealError::Damaged(_)), "{e}");
        assert!(!format!("{:?}", Keyring::new(dir.path())).contains("not a key"));
    }
}
