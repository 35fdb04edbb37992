//! Increments of one error counter over windows of sample time.
//!
//! Rates are never taken from one gap between samples: one symbol error in a 10 s gap is not
//! 360 errors per hour. Increments go into one-minute buckets (only buckets that saw any, so a
//! quiet counter costs nothing); a rate is the count over a whole window divided by the
//! window's length, so the sampling interval never sets the severity. Before a stream has a
//! whole window of history the count is still divided by the full window: a young stream may be
//! slower to fire, never louder.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Width of a bucket.
pub const BUCKET_MS: i64 = 60_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorWindow {
    /// (bucket start in sample time, increments in it), oldest first; only non-empty buckets.
    buckets: VecDeque<(i64, u64)>,
}

impl ErrorWindow {
    /// Count `n` increments seen at sample time `at_ms`, and forget buckets older than
    /// `keep_ms` before it.
    pub fn add(&mut self, at_ms: i64, n: u64, keep_ms: i64) {
        if n > 0 {
            let start = at_ms.div_euclid(BUCKET_MS) * BUCKET_MS;
            match self.buckets.back_mut() {
                Some((s, c)) if *s == start => *c = c.saturating_add(n),
                _ => self.buckets.push_back((start, n)),
            }
        }
        while let Some(&(s, _)) = self.buckets.front() {
            if s + BUCKET_MS <= at_ms - keep_ms {
                self.buckets.pop_front();
            } else {
                break;
            }
        }
    }

    /// Count `n` increments that happened between two readings at `from_ms` and `to_ms`,
    /// spread evenly over the gap: a counter read once a day does not put a day's errors into
    /// its last minute. Only the share inside the kept span is counted.
    pub fn add_spread(&mut self, from_ms: i64, to_ms: i64, n: u64, keep_ms: i64) {
        let gap = to_ms - from_ms;
        if n == 0 || gap <= BUCKET_MS {
            return self.add(to_ms, n, keep_ms);
        }
        let start = from_ms.max(to_ms - keep_ms);
        // Increments up to sample time t, in proportion to the gap, rounded: shares of
        // consecutive buckets always add up.
        let upto = |t: i64| ((n as f64) * ((t - from_ms) as f64 / gap as f64)).round() as u64;
        let mut lo = start;
        while lo < to_ms {
            let hi = ((lo.div_euclid(BUCKET_MS) + 1) * BUCKET_MS).min(to_ms);
            let share = upto(hi) - upto(lo);
            if share > 0 {
                self.add(lo, share, keep_ms);
            }
            lo = hi;
        }
        self.add(to_ms, 0, keep_ms);
    }

    /// Increments in the window of `len_ms` ending at `now_ms`: the buckets that start inside
    /// it, so a rate over `len_ms` is never overstated by a bucket that began before it.
    pub fn count(&self, now_ms: i64, len_ms: i64) -> u64 {
        let from = now_ms - len_ms;
        let first = from.div_euclid(BUCKET_MS) * BUCKET_MS
            + i64::from(from.rem_euclid(BUCKET_MS) != 0) * BUCKET_MS;
        self.buckets
            .iter()
            .rev()
            .take_while(|&&(s, _)| s >= first)
            .map(|&(_, c)| c)
            .sum()
    }

    /// Increments per hour over the window of `len_ms` ending at `now_ms`.
    pub fn per_hour(&self, now_ms: i64, len_ms: i64) -> f64 {
        if len_ms <= 0 {
            return 0.0;
        }
        self.count(now_ms, len_ms) as f64 * 3_600_000.0 / len_ms as f64
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;

    #[test]
    fn given_one_error_in_a_ten_second_gap_when_rated_over_an_hour_then_it_is_one_per_hour() {
        let mut w = ErrorWindow::default();
        w.add(70_000, 1, HOUR);
        assert_eq!(w.per_hour(70_000, HOUR), 1.0);
        assert_eq!(w.per_hour(70_000, 5 * MIN), 12.0);
    }

    #[test]
    fn given_increments_over_time_when_counted_then_only_the_window_counts() {
        let mut w = ErrorWindow::default();
        for minute in 0..10 {
            w.add(minute * MIN + 30_000, 2, HOUR);
        }
        // Minutes 5..9 start inside the five minutes ending at 9:30.
        assert_eq!(w.count(9 * MIN + 30_000, 5 * MIN), 10);
        assert_eq!(w.count(10 * MIN, 5 * MIN), 10);
        assert_eq!(w.count(9 * MIN + 30_000, HOUR), 20);
    }

    #[test]
    fn given_old_buckets_when_time_moves_on_then_they_are_forgotten() {
        let mut w = ErrorWindow::default();
        w.add(0, 5, HOUR);
        w.add(2 * HOUR, 0, HOUR);
        assert!(w.is_empty());
        assert_eq!(w.count(2 * HOUR, HOUR), 0);
    }

    #[test]
    fn given_a_day_long_gap_when_its_errors_are_added_then_only_the_last_hour_holds_its_share() {
        let mut w = ErrorWindow::default();
        w.add_spread(0, 24 * HOUR, 2_400, HOUR);
        let last_hour = w.count(24 * HOUR, HOUR);
        assert!((99..=101).contains(&last_hour), "{last_hour}");
        assert!(w.count(24 * HOUR, 5 * MIN) <= 10);
    }

    #[test]
    fn given_a_short_gap_then_its_errors_land_at_its_end() {
        let mut w = ErrorWindow::default();
        w.add_spread(0, 10_000, 7, HOUR);
        assert_eq!(w.count(10_000, 5 * MIN), 7);
    }

    #[test]
    fn given_no_increments_when_added_then_nothing_is_kept() {
        let mut w = ErrorWindow::default();
        w.add(1_000, 0, HOUR);
        assert!(w.is_empty());
    }
}
