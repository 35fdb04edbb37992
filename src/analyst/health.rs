//! The AI health figures the dashboard shows: model calls per minute and their p95 latency over
//! a recent window, from a bounded record of recent calls.

use serde::Serialize;
use std::collections::VecDeque;

/// How far back the figures look.
pub const WINDOW_MS: i64 = 5 * 60 * 1000;
const MAX_KEPT: usize = 10_000;

#[derive(Debug, Default)]
pub struct RecentCalls {
    /// (time, latency ms, answered by the model) of each call, oldest first.
    calls: VecDeque<(i64, u64, bool)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallFigures {
    pub window_s: i64,
    pub calls: usize,
    pub calls_per_min: f64,
    pub p95_latency_ms: Option<u64>,
    /// Calls in the window that failed (their anomalies got fallback insights).
    pub failed_calls: usize,
}

impl RecentCalls {
    pub fn record(&mut self, at_ms: i64, latency_ms: u64, ok: bool) {
        self.calls.push_back((at_ms, latency_ms, ok));
        while self.calls.len() > MAX_KEPT
            || self
                .calls
                .front()
                .is_some_and(|(t, _, _)| *t < at_ms - WINDOW_MS)
        {
            self.calls.pop_front();
        }
    }

    pub fn figures(&self, now_ms: i64) -> CallFigures {
        let recent: Vec<&(i64, u64, bool)> = self
            .calls
            .iter()
            .filter(|(t, _, _)| *t >= now_ms - WINDOW_MS)
            .collect();
        let mut latencies: Vec<u64> = recent.iter().map(|(_, l, _)| *l).collect();
        latencies.sort_unstable();
        let p95 = (!latencies.is_empty())
            .then(|| latencies[((latencies.len() as f64 * 0.95).ceil() as usize).max(1) - 1]);
        CallFigures {
            window_s: WINDOW_MS / 1000,
            calls: recent.len(),
            calls_per_min: (recent.len() as f64 / (WINDOW_MS as f64 / 60_000.0) * 10.0).round()
                / 10.0,
            p95_latency_ms: p95,
            failed_calls: recent.iter().filter(|(_, _, ok)| !ok).count(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_cover_the_window_only() {
        let mut r = RecentCalls::default();
        r.record(0, 9_999, true); // falls out of the window
        for i in 1..=100u64 {
            r.record(WINDOW_MS + i as i64 * 1000, i * 10, i % 10 != 0);
        }
        let f = r.figures(WINDOW_MS + 100_000);
        assert_eq!(f.calls, 100);
        assert_eq!(f.calls_per_min, 20.0);
        assert_eq!(f.p95_latency_ms, Some(950));
        assert_eq!(f.failed_calls, 10);
        let empty = RecentCalls::default().figures(0);
        assert_eq!((empty.calls, empty.p95_latency_ms), (0, None));
    }
}
