//! A stable hash (FNV-1a, 64 bit) for anything persisted or compared across runs: prompt
//! hashes, sampling decisions, stream partitioning. `DefaultHasher` may change between Rust
//! releases, so it is never used for these.

pub fn fnv1a64(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut h = Fnv1a::default();
    for b in bytes {
        h.push(b);
    }
    h.0
}

/// FNV-1a as a writer, to hash a value while it is encoded (no buffer).
pub struct Fnv1a(pub u64);

impl Default for Fnv1a {
    fn default() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    fn push(&mut self, b: u8) {
        self.0 ^= u64::from(b);
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
    }
}

impl std::io::Write for Fnv1a {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        bytes.iter().for_each(|&b| self.push(b));
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_vectors() {
        assert_eq!(super::fnv1a64(*b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a64(*b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
