//! Secrets compared without an early exit, so timing does not reveal a token's prefix.

/// Whether `a` and `b` are the same, in time that depends on their lengths only.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn given_tokens_then_only_equal_ones_are_the_same() {
        assert!(super::same("s3cret", "s3cret"));
        assert!(!super::same("s3cret", "s3creT"));
        assert!(!super::same("s3cret", "s3cre"));
        assert!(super::same("", ""));
    }
}
