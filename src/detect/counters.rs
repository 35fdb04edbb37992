//! Deltas of cumulative IB port counters between two samples of a stream.
//!
//! Basic PortCounters never wrap: they stick at their all-ones value (saturation) until an
//! operator clears them, which shows up as a reading lower than the last one (reset). A
//! reading above the basic width means the collector reads the 64-bit extended counter, and
//! the stream remembers that width from then on.

use crate::sample::counter_max_for_width;
use crate::sample::Counter;
use serde::{Deserialize, Serialize};

/// The last reading of one counter on one stream.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CounterReading {
    pub value: u64,
    pub timestamp_ms: i64,
    pub width_bits: u32,
}

/// What happened to a counter between two readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeltaKind {
    Normal,
    /// The counter was cleared; the delta is what it counted since the clear.
    Reset,
    /// The counter sits at its maximum; the delta is a lower bound.
    Saturated,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CounterDelta {
    pub delta: u64,
    pub elapsed_ms: i64,
    pub kind: DeltaKind,
}

impl CounterDelta {
    /// Increments per second over the elapsed sample time.
    pub fn per_second(&self) -> f64 {
        if self.elapsed_ms <= 0 {
            return 0.0;
        }
        self.delta as f64 * 1000.0 / self.elapsed_ms as f64
    }
}

/// The width a reading implies: the basic width unless the value only fits the extended one.
pub fn width_for(counter: Counter, value: u64, known_bits: Option<u32>) -> u32 {
    let basic = counter.basic_width_bits();
    let implied = if value > counter_max_for_width(basic) {
        64
    } else {
        basic
    };
    implied.max(known_bits.unwrap_or(0))
}

/// The delta from `prev` to a new reading, and the reading to remember. `None` delta on the
/// first reading of a counter (there is nothing to compare to).
pub fn observe(
    counter: Counter,
    prev: Option<&CounterReading>,
    value: u64,
    timestamp_ms: i64,
) -> (Option<CounterDelta>, CounterReading) {
    let width_bits = width_for(counter, value, prev.map(|p| p.width_bits));
    let reading = CounterReading {
        value,
        timestamp_ms,
        width_bits,
    };
    let Some(prev) = prev else {
        return (None, reading);
    };
    let elapsed_ms = timestamp_ms - prev.timestamp_ms;
    let max = counter_max_for_width(width_bits);
    let (delta, kind) = if value < prev.value {
        (value, DeltaKind::Reset)
    } else if value == max && width_bits < 64 {
        (value - prev.value, DeltaKind::Saturated)
    } else {
        (value - prev.value, DeltaKind::Normal)
    };
    (
        Some(CounterDelta {
            delta,
            elapsed_ms,
            kind,
        }),
        reading,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(value: u64, timestamp_ms: i64, width_bits: u32) -> CounterReading {
        CounterReading {
            value,
            timestamp_ms,
            width_bits,
        }
    }

    #[test]
    fn first_reading_has_no_delta() {
        let (d, r) = observe(Counter::SymbolErrorCounter, None, 5, 1000);
        assert_eq!(d, None);
        assert_eq!(r, reading(5, 1000, 16));
    }

    #[test]
    fn normal_delta_and_rate_use_sample_time() {
        let prev = reading(100, 0, 16);
        let (d, _) = observe(Counter::PortRcvErrors, Some(&prev), 150, 10_000);
        let d = d.expect("delta");
        assert_eq!(d.delta, 50);
        assert_eq!(d.kind, DeltaKind::Normal);
        assert!((d.per_second() - 5.0).abs() < 1e-9);
    }

    #[test]
    fn reset_counts_from_zero() {
        let prev = reading(60_000, 0, 16);
        let (d, _) = observe(Counter::SymbolErrorCounter, Some(&prev), 7, 1000);
        let d = d.expect("delta");
        assert_eq!((d.delta, d.kind), (7, DeltaKind::Reset));
    }

    #[test]
    fn saturation_at_the_basic_width() {
        let prev = reading(250, 0, 8);
        let (d, r) = observe(Counter::LinkDownedCounter, Some(&prev), 255, 1000);
        let d = d.expect("delta");
        assert_eq!((d.delta, d.kind), (5, DeltaKind::Saturated));
        // Stuck at max: still saturated, no new increments visible.
        let (d2, _) = observe(Counter::LinkDownedCounter, Some(&r), 255, 2000);
        assert_eq!(
            d2.map(|d| (d.delta, d.kind)),
            Some((0, DeltaKind::Saturated))
        );
    }

    #[test]
    fn four_bit_counters_saturate_at_15() {
        let prev = reading(3, 0, 4);
        let (d, _) = observe(Counter::LocalLinkIntegrityErrors, Some(&prev), 15, 1000);
        assert_eq!(d.map(|d| d.kind), Some(DeltaKind::Saturated));
    }

    #[test]
    fn extended_counter_width_is_learned_and_kept() {
        let (_, r) = observe(Counter::PortXmitData, None, 5_000_000_000, 0);
        assert_eq!(r.width_bits, 64);
        // 0xFFFF_FFFF is no saturation for a 64-bit counter.
        let prev = reading(4_000_000_000, 0, 64);
        let (d, r2) = observe(Counter::PortXmitData, Some(&prev), u32::MAX as u64, 1000);
        assert_eq!(d.map(|d| d.kind), Some(DeltaKind::Normal));
        assert_eq!(r2.width_bits, 64);
    }

    #[test]
    fn basic_data_counter_saturates_at_32_bits() {
        let prev = reading(4_000_000_000, 0, 32);
        let (d, _) = observe(Counter::PortXmitData, Some(&prev), u32::MAX as u64, 1000);
        assert_eq!(d.map(|d| d.kind), Some(DeltaKind::Saturated));
    }
}
