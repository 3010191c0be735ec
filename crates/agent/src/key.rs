//! The connector key: 128 random bits shown as 32 lowercase hex, kept in the agent's home.

use std::fmt;
use std::io::Write;
use std::path::Path;

/// Errors loading or creating the key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The key file holds something that is not a key.
    #[error("key file {0} is damaged; start with --reset-key to make a new key")]
    Malformed(String),
    /// The OS random source failed.
    #[error("the OS random source failed: {0}")]
    Random(String),
}

/// A connector key. `Debug` and `Display` show only its first 4 characters.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectorKey(String);

impl ConnectorKey {
    /// Makes a new key from the OS random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// Parses a key: exactly 32 lowercase hex characters.
    pub fn parse(s: &str) -> Option<Self> {
        is_valid_key(s).then(|| Self(s.to_owned()))
    }

    /// The full key, for the places a user asked to see it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Loads the key from `path`, creating it (mode 0600) if the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(text.trim())
                .ok_or_else(|| KeyError::Malformed(path.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                key.save(path)?;
                Ok(key)
            }
            Err(source) => Err(KeyError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Writes the key to `path` atomically with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension("tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(io)?;
        writeln!(file, "{}", self.0).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// Whether `s` is exactly 32 lowercase hex characters.
pub fn is_valid_key(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl fmt::Debug for ConnectorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectorKey({}…)", &self.0[..4])
    }
}

impl fmt::Display for ConnectorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", &self.0[..4])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_32_lowercase_hex_and_differ() {
        let a = ConnectorKey::generate().unwrap();
        let b = ConnectorKey::generate().unwrap();
        assert!(is_valid_key(a.expose()));
        assert_ne!(a, b);
    }

    #[test]
    fn debug_and_display_mask_the_key() {
        let key = ConnectorKey::parse("0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(format!("{key:?}"), "ConnectorKey(0123…)");
        assert_eq!(key.to_string(), "0123…");
    }

    #[test]
    fn parse_refuses_wrong_shapes() {
        assert!(ConnectorKey::parse("0123456789ABCDEF0123456789abcdef").is_none());
        assert!(ConnectorKey::parse("0123").is_none());
        assert!(ConnectorKey::parse("0123456789abcdef0123456789abcdeg").is_none());
    }

    #[test]
    fn load_or_create_keeps_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let a = ConnectorKey::load_or_create(&path).unwrap();
        let b = ConnectorKey::load_or_create(&path).unwrap();
        assert_eq!(a, b);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "junk").unwrap();
        assert!(matches!(
            ConnectorKey::load_or_create(&path),
            Err(KeyError::Malformed(_))
        ));
    }
}
