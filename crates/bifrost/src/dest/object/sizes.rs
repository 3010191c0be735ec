//! How a file is sent to object storage by its size: whole in batches, buffered in one
//! request, or in parts sized so that no upload needs more than the service allows.

/// Files up to this size are read whole and put in batches.
pub(super) const WHOLE_MAX: u64 = 1 << 20;
/// Files up to this size are buffered and put in one request; bigger ones go in parts.
pub const STREAM_MAX: u64 = 8 << 20;
/// The smallest part (S3 takes 5 MiB and up, but for the last).
pub const MIN_PART: u64 = 8 << 20;
/// The most parts an upload may have (S3's limit; Azure takes 50,000 blocks).
pub const MAX_PARTS: u64 = 10_000;
/// Whole files put at once.
pub(super) const PUTS_AT_ONCE: usize = 16;

/// The part size for a file of `size` bytes: [`MIN_PART`] doubled until at most [`MAX_PARTS`]
/// parts cover it (1 GiB parts for 5 TiB). A power of two, so parts follow the BLAKE3 tree.
pub fn part_size(size: u64) -> u64 {
    let mut p = MIN_PART;
    while size.div_ceil(p) > MAX_PARTS {
        p *= 2;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_at_least_8_mib_and_at_most_10_000() {
        assert_eq!(part_size(1), MIN_PART);
        assert_eq!(part_size(MIN_PART * MAX_PARTS), MIN_PART);
        assert_eq!(part_size(MIN_PART * MAX_PARTS + 1), 2 * MIN_PART);
        let five_tib = 5u64 << 40;
        let p = part_size(five_tib);
        assert_eq!(p, 1 << 30);
        let parts = crate::tree::parts_of(five_tib, p);
        assert!(parts.len() as u64 <= MAX_PARTS);
        // All but the last are the full size: S3 takes a short part only at the end.
        assert!(parts[..parts.len() - 1].iter().all(|&(_, len)| len == p));
        let odd = 3 * MIN_PART + 12_345;
        let parts = crate::tree::parts_of(odd, part_size(odd));
        assert!(parts[..parts.len() - 1]
            .iter()
            .all(|&(s, len)| len == MIN_PART && s % MIN_PART == 0));
    }
}
