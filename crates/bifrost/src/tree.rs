//! A big file in parts: splits it along BLAKE3's hash tree, so parts read in parallel each come
//! with a chaining value and the whole file's hash is merged from them without a second read.

use std::collections::BTreeMap;

use blake3::hazmat::{
    left_subtree_len, merge_subtrees_non_root, merge_subtrees_root, ChainingValue, Mode,
};

/// The largest part. Small enough that a part lost with a lane costs little, large enough
/// that a request per part costs nothing next to its transfer.
pub const PART: u64 = 4 << 20;

/// The parts of a file of `size` bytes (more than [`PART`]): `(start, len)` in order, each a
/// subtree of the file's hash tree.
pub fn parts(size: u64) -> Vec<(u64, u64)> {
    parts_of(size, PART)
}

/// The parts of a file of `size` bytes, none longer than `max` (a power of two of at least a
/// BLAKE3 chunk): every part but those of the tail is `max` long and starts at a multiple of
/// it.
pub fn parts_of(size: u64, max: u64) -> Vec<(u64, u64)> {
    fn split(start: u64, len: u64, max: u64, out: &mut Vec<(u64, u64)>) {
        if len <= max {
            out.push((start, len));
            return;
        }
        let left = left_subtree_len(len);
        split(start, left, max, out);
        split(start + left, len - left, max, out);
    }
    let mut out = Vec::new();
    split(0, size, max, &mut out);
    out
}

/// The whole file's BLAKE3 from the chaining values of its parts (made by [`parts_of`] with
/// `max`), keyed by start; `None` if one is missing or the file is a single part.
pub fn root(size: u64, max: u64, cvs: &BTreeMap<u64, ChainingValue>) -> Option<blake3::Hash> {
    fn node(
        start: u64,
        len: u64,
        max: u64,
        cvs: &BTreeMap<u64, ChainingValue>,
    ) -> Option<ChainingValue> {
        if len <= max {
            return cvs.get(&start).copied();
        }
        let left = left_subtree_len(len);
        Some(merge_subtrees_non_root(
            &node(start, left, max, cvs)?,
            &node(start + left, len - left, max, cvs)?,
            Mode::Hash,
        ))
    }
    if size <= max {
        return None;
    }
    let left = left_subtree_len(size);
    Some(merge_subtrees_root(
        &node(0, left, max, cvs)?,
        &node(left, size - left, max, cvs)?,
        Mode::Hash,
    ))
}

/// Parses a chaining value sent as hex.
pub fn parse_cv(hex: &str) -> Option<ChainingValue> {
    let hex = hex.as_bytes();
    if hex.len() != 64 {
        return None;
    }
    let mut cv = [0u8; 32];
    for (i, pair) in hex.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        cv[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(cv)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use blake3::hazmat::HasherExt;

    #[test]
    fn merged_parts_are_the_whole_files_hash() {
        for size in [
            PART + 1,
            3 * PART + 777,
            8 * PART,
            8 * PART + 1024,
            21 * PART - 5,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let parts = parts(size);
            assert_eq!(parts.iter().map(|p| p.1).sum::<u64>(), size);
            assert!(parts.iter().all(|&(_, len)| len <= PART && len > 0));
            let mut cvs = BTreeMap::new();
            for &(start, len) in &parts {
                let mut h = blake3::Hasher::new();
                h.set_input_offset(start);
                h.update(&data[start as usize..(start + len) as usize]);
                cvs.insert(start, h.finalize_non_root());
            }
            assert_eq!(
                root(size, PART, &cvs).unwrap(),
                blake3::hash(&data),
                "{size}"
            );
            cvs.pop_last();
            assert!(root(size, PART, &cvs).is_none());
        }
    }

    #[test]
    fn bigger_parts_merge_the_same_way_and_tails_stay_subtrees() {
        let size = 5 * 4 * PART + 3 * PART + 9;
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();
        let parts = parts_of(size, 4 * PART);
        let full: Vec<_> = parts.iter().filter(|p| p.1 == 4 * PART).collect();
        assert_eq!(full.len(), 5);
        assert!(full.iter().all(|p| p.0 % (4 * PART) == 0));
        let mut cvs = BTreeMap::new();
        for &(start, len) in &parts {
            let mut h = blake3::Hasher::new();
            h.set_input_offset(start);
            h.update(&data[start as usize..(start + len) as usize]);
            cvs.insert(start, h.finalize_non_root());
        }
        assert_eq!(root(size, 4 * PART, &cvs).unwrap(), blake3::hash(&data));
    }

    #[test]
    fn chaining_values_parse_from_hex() {
        let hex = "ab".repeat(32);
        assert_eq!(parse_cv(&hex), Some([0xab; 32]));
        assert!(parse_cv("ab").is_none());
        assert!(parse_cv(&"zz".repeat(32)).is_none());
    }
}
