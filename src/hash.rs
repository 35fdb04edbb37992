//! A stable hash (FNV-1a, 64 bit) for anything persisted or compared across runs: prompt
//! hashes, sampling decisions, stream partitioning. `DefaultHasher` may change between Rust
//! releases, so it is never used for these.

pub fn fnv1a64(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_vectors() {
        assert_eq!(super::fnv1a64(*b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a64(*b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
