//! Paths as exact bytes: agent paths and destination paths may be any bytes on Unix, so they are
//! carried as bytes, shown lossily, and stored and sent as base64 when they are not UTF-8.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// A path's exact bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawPath(pub Vec<u8>);

impl RawPath {
    /// A UTF-8 path.
    pub fn new(s: &str) -> Self {
        Self(s.as_bytes().to_vec())
    }

    /// Rebuilds a path from its lossy text and, when present, its exact bytes.
    pub fn from_stored(lossy: String, b64: Option<&str>) -> Self {
        match b64
            .filter(|b| !b.is_empty())
            .and_then(|b| STANDARD.decode(b).ok())
        {
            Some(bytes) => Self(bytes),
            None => Self(lossy.into_bytes()),
        }
    }

    /// The name of an entry the agent listed.
    pub fn entry_name(entry: &mover_proto::Entry) -> Self {
        Self::from_stored(entry.name.clone(), entry.name_b64.as_deref())
    }

    /// The path as text, with invalid bytes replaced.
    pub fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }

    /// The exact bytes as base64, only when they are not UTF-8.
    pub fn b64(&self) -> Option<String> {
        std::str::from_utf8(&self.0)
            .is_err()
            .then(|| STANDARD.encode(&self.0))
    }

    /// The query parameter that names this path to the agent.
    pub fn query_pair(&self) -> (&'static str, String) {
        match std::str::from_utf8(&self.0) {
            Ok(s) => ("path", s.to_owned()),
            Err(_) => ("path_b64", STANDARD.encode(&self.0)),
        }
    }

    /// Whether this agent path is a Windows one (`C:\\x`, `\\\\server\\share`): a Unix path is
    /// absolute, so starts with `/`. Only on Windows is `\\` a separator; on Unix it is an
    /// ordinary byte of a name.
    pub fn is_windows(&self) -> bool {
        !self.0.starts_with(b"/")
    }

    fn is_separator(&self, b: u8) -> bool {
        b == b'/' || (b == b'\\' && self.is_windows())
    }

    /// `self` + separator + `name`, with the separator the path already uses.
    pub fn join(&self, name: &RawPath) -> Self {
        let sep = if self.is_windows() && !self.0.contains(&b'/') {
            b'\\'
        } else {
            b'/'
        };
        let mut out = self.0.clone();
        if out.last() != Some(&sep) {
            out.push(sep);
        }
        out.extend_from_slice(&name.0);
        Self(out)
    }

    /// `self/name` for destination paths, which always use `/`.
    pub fn child(&self, name: &RawPath) -> Self {
        let mut out = self.0.clone();
        out.push(b'/');
        out.extend_from_slice(&name.0);
        Self(out)
    }

    /// Whether this is one name on an agent whose paths look like `of` and one path
    /// component at a folder destination: not empty, `.` or `..`, no `/` or NUL, and no `\\`
    /// from a Windows agent (where it separates). A Unix name with `\\` is kept as it is: on
    /// Bifrost's Unix file system that byte is part of the name, not a separator.
    pub fn is_safe_name(&self, of: &RawPath) -> bool {
        let n = &self.0;
        !n.is_empty()
            && n != b"."
            && n != b".."
            && n.len() <= mover_proto::limits::MAX_NAME_BYTES
            && !n.iter().any(|&b| b == 0 || of.is_separator(b))
    }

    /// The last component, split by the separators of this path's platform.
    pub fn base_name(&self) -> RawPath {
        let mut end = self.0.len();
        while end > 0 && self.is_separator(self.0[end - 1]) {
            end -= 1;
        }
        let trimmed = &self.0[..end];
        let start = trimmed
            .iter()
            .rposition(|&b| self.is_separator(b))
            .map(|i| i + 1)
            .unwrap_or(0);
        RawPath(trimmed[start..].to_vec())
    }

    /// This path on Bifrost's file system, byte for byte on Unix.
    pub fn to_path(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(os_str(&self.0))
    }
}

#[cfg(unix)]
fn os_str(bytes: &[u8]) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(bytes).to_owned()
}

#[cfg(not(unix))]
fn os_str(bytes: &[u8]) -> std::ffi::OsString {
    String::from_utf8_lossy(bytes).into_owned().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_paths() {
        let latin1 = RawPath(b"caf\xe9".to_vec());
        assert_eq!(latin1.lossy(), "caf\u{fffd}");
        let stored = RawPath::from_stored(latin1.lossy(), latin1.b64().as_deref());
        assert_eq!(stored, latin1);
        assert_eq!(latin1.query_pair().0, "path_b64");
        assert_eq!(RawPath::new("/a").query_pair(), ("path", "/a".to_owned()));
        assert_eq!(RawPath::new("/a").join(&latin1).0, b"/a/caf\xe9");
        assert_eq!(RawPath::new("/").join(&RawPath::new("b")).0, b"/b");
        assert_eq!(
            RawPath::new(r"C:\data").join(&RawPath::new("b")).0,
            br"C:\data\b"
        );
        assert_eq!(
            RawPath::new("/srv/share/Finance/").base_name(),
            RawPath::new("Finance")
        );
        assert_eq!(RawPath::new(r"D:\x").base_name(), RawPath::new("x"));
    }

    #[test]
    fn names_split_and_check_by_the_agents_platform() {
        let unix = RawPath::new("/srv");
        let windows = RawPath::new(r"C:\srv");
        // On Unix `\` is a byte of the name: `x\..` is one folder, never `..`.
        assert_eq!(RawPath::new(r"/s/x\..").base_name(), RawPath::new(r"x\.."));
        assert_eq!(RawPath::new(r"/s/y\.").base_name(), RawPath::new(r"y\."));
        assert_eq!(RawPath::new(r"/s/y\./").base_name(), RawPath::new(r"y\."));
        assert_eq!(RawPath::new(r"C:\s\x\..").base_name(), RawPath::new(".."));
        assert_eq!(
            RawPath::new(r"\\srv\share\a").base_name(),
            RawPath::new("a")
        );
        assert!(RawPath::new(r"x\..").is_safe_name(&unix));
        assert!(!RawPath::new(r"x\..").is_safe_name(&windows));
        assert!(RawPath::new("a b ü").is_safe_name(&windows));
        for bad in ["..", ".", "a/b", "", "a\0b"] {
            assert!(!RawPath::new(bad).is_safe_name(&unix), "{bad}");
            assert!(!RawPath::new(bad).is_safe_name(&windows), "{bad}");
        }
        let long = RawPath(vec![b'a'; 60 * 1024]);
        assert!(!long.is_safe_name(&unix));
    }
}
