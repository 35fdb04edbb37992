//! The wall clock, in one place. Detection never reads it (it uses sample timestamps); only
//! `recorded_at`, input validation (future skew) and retention do.

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Epoch milliseconds as RFC 3339 in UTC with exactly three fractional digits, so that the
/// strings sort like the times (DynamoDB sort keys and the views rely on it).
pub fn rfc3339(ms: i64) -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_have_fixed_width_and_sort_like_time() {
        assert_eq!(
            super::rfc3339(1_750_000_000_620),
            "2025-06-15T15:06:40.620Z"
        );
        assert_eq!(
            super::rfc3339(1_750_000_000_000),
            "2025-06-15T15:06:40.000Z"
        );
        assert!(super::rfc3339(1_750_000_000_620) < super::rfc3339(1_750_000_000_621));
    }
}
