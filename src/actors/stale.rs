//! Streams that stop reporting. The fabric's clock is the newest sample time seen (detection
//! reads sample time, never the wall clock); a stream silent for `stale_intervals` of its own
//! interval at that clock is stale. Its stream actor records the `stale` anomaly, which
//! clears when data returns. A whole fabric gone silent moves no clock: that is a collector
//! outage, which `/readyz` and the ingest metrics show, not a port fault.

use std::collections::HashMap;
use std::sync::Mutex;

pub use crate::detect::detector::stale_after;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Seen {
    last_ms: i64,
    interval_ms: i64,
    /// Reported stale at this silence already (reported once per silence).
    reported: bool,
}

#[derive(Debug, Default)]
pub struct StaleWatch {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashMap<String, Seen>,
    clock_ms: i64,
    scanned_ms: i64,
}

impl StaleWatch {
    /// Note that `stream_id` reported samples up to `last_ms`; `prev_gap_ms` is the gap
    /// between its last two samples in this batch, if it had two.
    pub fn observe(&self, stream_id: &str, last_ms: i64, prev_gap_ms: Option<i64>) {
        self.observe_all([(stream_id, last_ms, prev_gap_ms)]);
    }

    /// `observe` for every stream of a request, under one lock.
    pub fn observe_all<'a>(&self, reports: impl IntoIterator<Item = (&'a str, i64, Option<i64>)>) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for (stream_id, last_ms, prev_gap_ms) in reports {
            g.clock_ms = g.clock_ms.max(last_ms);
            // Known streams are looked up by &str: no copy of the id per report.
            let e = match g.seen.get_mut(stream_id) {
                Some(e) => e,
                None => g.seen.entry(stream_id.to_string()).or_insert(Seen {
                    last_ms,
                    interval_ms: 0,
                    reported: false,
                }),
            };
            note(e, last_ms, prev_gap_ms);
        }
    }

    /// Streams silent for more than `intervals` of their own interval at the fabric clock,
    /// not reported yet: (stream, interval, clock). Scans at most once per second of clock.
    pub fn due(&self, intervals: u32) -> Vec<(String, i64, i64)> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = g.clock_ms;
        if now - g.scanned_ms < 1000 {
            return Vec::new();
        }
        g.scanned_ms = now;
        let mut out = Vec::new();
        for (id, s) in g.seen.iter_mut() {
            if !s.reported
                && s.interval_ms > 0
                && now - s.last_ms > stale_after(s.interval_ms, intervals)
            {
                s.reported = true;
                out.push((id.clone(), s.interval_ms, now));
            }
        }
        out.sort();
        out
    }
}

/// Fold one report of a stream into what is known of it.
fn note(e: &mut Seen, last_ms: i64, prev_gap_ms: Option<i64>) {
    if let Some(gap) = prev_gap_ms {
        e.interval_ms = gap;
    } else if last_ms > e.last_ms {
        let gap = last_ms - e.last_ms;
        // A silence that was reported is not the stream's interval; it may hint that the
        // interval grew (a collector reconfigured), so the interval moves halfway to it.
        e.interval_ms = if e.reported {
            e.interval_ms.max(gap / 2)
        } else {
            gap
        };
    }
    e.last_ms = e.last_ms.max(last_ms);
    e.reported = false;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_stream_that_stops_when_the_fabric_moves_on_then_it_is_due_once() {
        let w = StaleWatch::default();
        for t in 0..5 {
            w.observe("a", t * 10_000, None);
            w.observe("b", t * 10_000, None);
        }
        // b goes on, a is silent.
        for t in 5..7 {
            w.observe("b", t * 10_000, None);
            assert!(w.due(3).is_empty(), "not yet at {t}");
        }
        w.observe("b", 70_000, None);
        assert_eq!(w.due(3), vec![("a".to_string(), 10_000, 70_000)]);
        w.observe("b", 90_000, None);
        assert!(w.due(3).is_empty(), "reported once per silence");
        // Data returns; the silence does not become its interval; a later silence is
        // reported again.
        w.observe("a", 90_000, None);
        w.observe("a", 100_000, None);
        for t in 10..14 {
            w.observe("b", t * 10_000, None);
        }
        assert_eq!(w.due(3), vec![("a".to_string(), 10_000, 130_000)]);
    }

    #[test]
    fn given_a_collector_that_slows_down_then_its_streams_go_stale_once_not_for_ever() {
        let w = StaleWatch::default();
        let mut stale = 0;
        let mut t = 0;
        for _ in 0..10 {
            w.observe("a", t, None);
            t += 1_000;
        }
        for _ in 0..20 {
            t += 10_000;
            // The fabric's clock moves on in between (another collector).
            for k in 1..10 {
                w.observe("b", t - 10_000 + k * 1_000, None);
                stale += w.due(3).len();
            }
            w.observe("a", t, None);
            w.observe("b", t, None);
        }
        assert_eq!(
            stale, 1,
            "stale once when the interval grew, then it learns"
        );
    }

    #[test]
    fn given_a_stream_seen_once_then_its_interval_is_unknown_and_it_is_never_due() {
        let w = StaleWatch::default();
        w.observe("a", 0, None);
        w.observe("b", 1_000_000, None);
        assert!(w.due(3).is_empty());
    }
}
