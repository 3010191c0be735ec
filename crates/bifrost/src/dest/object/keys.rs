//! Object keys from destination paths: the job's path under the destination's prefix, UTF-8
//! always. A name that cannot be a key as it is (not UTF-8, a control character, or `\` on Azure)
//! is stored under a reversible escape and the object says so in its metadata.

use object_store::path::Path;
use object_store::{Attribute, AttributeValue, Attributes};

use crate::failure::CopyError;
use crate::raw_path::RawPath;

/// The longest key S3 and Azure take, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Metadata names, lowercase `[a-z][a-z0-9_]*` as both S3 and Azure keep them.
pub const META_MTIME: &str = "mover_mtime";
/// The BLAKE3 of the content, hex.
pub const META_BLAKE3: &str = "mover_blake3";
/// Present (`"1"`) when the key is the escaped form of a name that could not be a key.
pub const META_ESCAPED: &str = "mover_escaped";

/// An object's key, and whether it is escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// The key as the service sees it.
    pub text: String,
    /// Made by [`escape`]: `%` and the bytes that could not stay are written `%XX`.
    pub escaped: bool,
}

impl Key {
    /// The key as object_store takes it.
    pub fn path(&self) -> Result<Path, CopyError> {
        Path::parse(&self.text).map_err(|e| CopyError::Outside(format!("object key: {e}")))
    }
}

/// Whether byte `b` of a valid UTF-8 key can stay as it is on this kind of store.
fn keeps(b: u8, backslash: bool) -> bool {
    !(b.is_ascii_control() || (b == b'\\' && !backslash))
}

/// The escape: every `%`, every control byte, every byte of an invalid UTF-8 sequence (and `\`
/// where the store cannot hold it) as `%XX`, uppercase hex. Undone by [`unescape`].
pub fn escape(raw: &[u8], backslash: bool) -> String {
    let mut out = String::with_capacity(raw.len() + 8);
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            let mut buf = [0u8; 4];
            let s = c.encode_utf8(&mut buf);
            if c == '%' || (s.len() == 1 && !keeps(s.as_bytes()[0], backslash)) {
                out.push_str(&format!("%{:02X}", s.as_bytes()[0]));
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The name an escaped key stands for; `None` if it is not a key [`escape`] made.
pub fn unescape(key: &str) -> Option<Vec<u8>> {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The key of destination path `dest` (absolute under the job's root, `/` separated) under
/// `prefix`: escaped when some byte of it cannot stay.
pub fn key(prefix: &str, dest: &RawPath, backslash: bool) -> Result<Key, CopyError> {
    // A job into the destination's top has the root `/`, so its paths start `//`.
    let start = dest.0.iter().take_while(|&&b| b == b'/').count();
    let rel = &dest.0[start..];
    let plain = std::str::from_utf8(rel)
        .ok()
        .filter(|s| s.bytes().all(|b| keeps(b, backslash)));
    let (body, escaped) = match plain {
        Some(s) => (s.to_owned(), false),
        None => (escape(rel, backslash), true),
    };
    let text = match prefix {
        "" => body,
        p => format!("{p}/{body}"),
    };
    if text.len() > MAX_KEY_BYTES {
        return Err(CopyError::Limit(format!(
            "the object key would be {} bytes; object stores take at most {MAX_KEY_BYTES}",
            text.len()
        )));
    }
    let key = Key { text, escaped };
    key.path()?;
    Ok(key)
}

/// The metadata an object carries: the source's modification time (Unix seconds and
/// nanoseconds, `S.NNNNNNNNN`), its BLAKE3 when known, and the escape mark.
pub fn attributes(
    modified: Option<time::OffsetDateTime>,
    blake3: Option<&str>,
    escaped: bool,
) -> Attributes {
    let mut a = Attributes::new();
    let mut put = |k: &'static str, v: String| {
        a.insert(Attribute::Metadata(k.into()), AttributeValue::from(v));
    };
    if let Some(m) = modified {
        put(
            META_MTIME,
            format!("{}.{:09}", m.unix_timestamp(), m.nanosecond()),
        );
    }
    if let Some(b) = blake3 {
        put(META_BLAKE3, b.to_owned());
    }
    if escaped {
        put(META_ESCAPED, "1".to_owned());
    }
    a
}

/// The modification time an object's metadata records, Unix seconds.
pub fn mtime_of(attributes: &Attributes) -> Option<i64> {
    let v = attributes.get(&Attribute::Metadata(META_MTIME.into()))?;
    v.as_ref().split('.').next()?.parse().ok()
}

/// The BLAKE3 an object's metadata records.
pub fn blake3_of(attributes: &Attributes) -> Option<String> {
    let v = attributes.get(&Attribute::Metadata(META_BLAKE3.into()))?;
    let v = v.as_ref();
    (v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())).then(|| v.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn plain_names_are_their_own_keys() {
        let k = key("", &RawPath::new("/dept/Finance/a b ü 100%.txt"), true).unwrap();
        assert_eq!(k.text, "dept/Finance/a b ü 100%.txt");
        assert!(!k.escaped);
        let k = key("backup/2026", &RawPath::new("/x"), true).unwrap();
        assert_eq!(k.text, "backup/2026/x");
        // Into the destination's top: the job's root is `/`.
        let k = key("", &RawPath::new("//parts/big.bin"), true).unwrap();
        assert_eq!(k.text, "parts/big.bin");
    }

    #[test]
    fn names_that_cannot_be_keys_are_escaped_reversibly() {
        let raw = b"/d/caf\xe9 100%\x01.txt";
        let k = key("p", &RawPath(raw.to_vec()), true).unwrap();
        assert_eq!(k.text, "p/d/caf%E9 100%25%01.txt");
        assert!(k.escaped);
        assert_eq!(unescape("d/caf%E9 100%25%01.txt").unwrap(), &raw[1..]);
        // `\` stays on S3 and is escaped on Azure, which reads it as `/`.
        assert_eq!(key("", &RawPath::new(r"/a\b"), true).unwrap().text, r"a\b");
        let az = key("", &RawPath::new(r"/a\b"), false).unwrap();
        assert_eq!((az.text.as_str(), az.escaped), ("a%5Cb", true));
        for raw in [&b"\xff\xfe%%"[..], b"ok", "ü\\%".as_bytes(), b"\x7f"] {
            assert_eq!(unescape(&escape(raw, false)).unwrap(), raw);
        }
        assert_eq!(unescape("%G1"), None);
    }

    #[test]
    fn keys_over_the_limit_fail_alone() {
        let long = format!("/{}", "a".repeat(MAX_KEY_BYTES + 1));
        assert!(matches!(
            key("", &RawPath::new(&long), true),
            Err(CopyError::Limit(_))
        ));
    }

    #[test]
    fn metadata_round_trips() {
        let t = time::macros::datetime!(2026-01-02 03:04:05.5 UTC);
        let h = blake3::hash(b"x").to_hex().to_string();
        let a = attributes(Some(t), Some(&h), true);
        assert_eq!(mtime_of(&a), Some(t.unix_timestamp()));
        assert_eq!(blake3_of(&a), Some(h));
        assert_eq!(blake3_of(&attributes(None, Some("nothex"), false)), None);
    }
}
