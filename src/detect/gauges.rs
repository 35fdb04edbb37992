//! Gauges derived from the counters: the bandwidth and utilization of a port, from
//! `PortXmitData`/`PortRcvData` (4-octet words) over sample time and the link's data rate, and
//! its QP errors, from the increments of the transport error counters (`Counter::QP_ERRORS`,
//! sysfs `hw_counters`) since the previous sample.
//!
//! The one place that turns counters into gauges, so `collect`, `agent` and any client that
//! posts counters get the same figures. Pure: the previous readings and a sample in, rates out.
//!
//! - The first reading of a counter has no rate (nothing to compare to).
//! - A 64-bit counter that went down was cleared: no rate for that sample (when in the gap
//!   the clear fell is unknown).
//! - A 32-bit counter that went down wrapped when the wrapped delta fits the link's rate, and
//!   was cleared otherwise.
//! - A 32-bit counter at its all-ones value is saturated: its delta is only a lower bound, so
//!   no rate.
//! - A rate above the link's data rate (plus a margin for timestamp jitter) is not believed.

use super::counters::{observe, width_for, CounterReading};
use crate::sample::{counter_max_for_width, Counter, Metric, Sample};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bits in one unit of PortXmitData/PortRcvData (a 4-octet word).
const BITS_PER_WORD: f64 = 32.0;

/// How far past the link's data rate a measured rate may be and still be believed (the
/// counters and their timestamps are not read at the same instant).
const RATE_MARGIN: f64 = 1.05;

/// The rates of one sample, each `None` when the sample gives none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    pub tx_gbps: Option<f64>,
    pub rx_gbps: Option<f64>,
    /// % of the link's data rate.
    pub tx_utilization: Option<f64>,
    pub rx_utilization: Option<f64>,
    /// The sample time the rates are measured over, ms.
    pub over_ms: Option<i64>,
    /// Increments of the transport error counters since the previous sample.
    pub qp_errors: Option<u64>,
}

impl Rates {
    pub fn is_empty(&self) -> bool {
        self.tx_gbps.is_none() && self.rx_gbps.is_none() && self.qp_errors.is_none()
    }

    /// The busier direction's utilization, %.
    pub fn utilization(&self) -> Option<f64> {
        max(self.tx_utilization, self.rx_utilization)
    }

    /// The busier direction's bandwidth, Gb/s.
    pub fn bandwidth_gbps(&self) -> Option<f64> {
        max(self.tx_gbps, self.rx_gbps)
    }
}

fn max(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The rates `sample` gives against the previous readings of its stream's counters.
pub fn derive(prev: &BTreeMap<Counter, CounterReading>, sample: &Sample) -> Rates {
    let qp_errors = qp_errors(prev, sample);
    let Some(link_gbps) = sample
        .link
        .as_ref()
        .and_then(|l| l.rate_gbps)
        .filter(|g| *g > 0.0)
    else {
        return Rates {
            qp_errors,
            ..Rates::default()
        };
    };
    let direction = |counter: Counter| -> Option<(f64, i64)> {
        let value = *sample.counters.get(&counter)?;
        gbps(
            counter,
            prev.get(&counter)?,
            value,
            sample.timestamp_ms,
            link_gbps,
        )
    };
    let tx = direction(Counter::PortXmitData);
    let rx = direction(Counter::PortRcvData);
    let pct = |g: f64| g / link_gbps * 100.0;
    Rates {
        tx_gbps: tx.map(|t| t.0),
        rx_gbps: rx.map(|r| r.0),
        tx_utilization: tx.map(|t| pct(t.0)),
        rx_utilization: rx.map(|r| pct(r.0)),
        over_ms: tx.or(rx).map(|t| t.1),
        qp_errors,
    }
}

/// The increments of the transport error counters the sample and the previous readings both
/// have; a counter that went down was cleared and counts what it read since.
fn qp_errors(prev: &BTreeMap<Counter, CounterReading>, sample: &Sample) -> Option<u64> {
    Counter::QP_ERRORS
        .iter()
        .filter_map(|c| {
            let value = *sample.counters.get(c)?;
            let (delta, _) = observe(*c, Some(prev.get(c)?), value, sample.timestamp_ms);
            delta.map(|d| d.delta)
        })
        .reduce(|a, b| a.saturating_add(b))
}

/// Gb/s of one data counter from `prev` to `value` at `ts`, and the time it is over.
fn gbps(
    counter: Counter,
    prev: &CounterReading,
    value: u64,
    ts: i64,
    link_gbps: f64,
) -> Option<(f64, i64)> {
    let elapsed_ms = ts - prev.timestamp_ms;
    if elapsed_ms <= 0 {
        return None;
    }
    let rate = |words: u64| words as f64 * BITS_PER_WORD / (elapsed_ms as f64 * 1e6);
    let believable = |g: f64| g <= link_gbps * RATE_MARGIN;
    let width = width_for(counter, value, Some(prev.width_bits));
    let max = counter_max_for_width(width);
    let words = if value >= prev.value {
        if width < 64 && value == max {
            return None;
        }
        value - prev.value
    } else if width < 64 {
        let wrapped = (max - prev.value) + value + 1;
        if !believable(rate(wrapped)) {
            return None;
        }
        wrapped
    } else {
        return None;
    };
    let g = rate(words);
    believable(g).then_some((g, elapsed_ms))
}

/// A gauge of the sample: what the client sent, else what its counters gave. `utilization`
/// is the busier direction's %, `bandwidth_gbps` the busier direction's Gb/s, `qp_errors` the
/// transport errors since the previous sample. The sample itself is never changed.
pub fn metric(sample: &Sample, rates: &Rates, m: Metric) -> Option<f64> {
    sample.metric(m).or(match m {
        Metric::UtilizationPct => rates.utilization(),
        Metric::BandwidthGbps => rates.bandwidth_gbps(),
        Metric::QpErrors => rates.qp_errors.map(|n| n as f64),
        Metric::LatencyP99Us | Metric::ErrorRate => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::port::LinkInfo;

    /// 100 Gb/s: 4X EDR.
    const LINK: f64 = 100.0;
    /// Words a 100 Gb/s link moves in one second at full rate.
    const WORDS_PER_S_AT_LINE_RATE: u64 = 100_000_000_000 / 32;

    fn given_readings(
        tx: u64,
        rx: u64,
        at_ms: i64,
        width_bits: u32,
    ) -> BTreeMap<Counter, CounterReading> {
        [(Counter::PortXmitData, tx), (Counter::PortRcvData, rx)]
            .into_iter()
            .map(|(c, value)| {
                (
                    c,
                    CounterReading {
                        value,
                        timestamp_ms: at_ms,
                        width_bits,
                    },
                )
            })
            .collect()
    }

    fn sample(tx: u64, rx: u64, at_ms: i64, link_gbps: Option<f64>) -> Sample {
        Sample {
            stream_id: "leaf01/p1".into(),
            timestamp_ms: at_ms,
            counters: [(Counter::PortXmitData, tx), (Counter::PortRcvData, rx)].into(),
            link: Some(LinkInfo {
                rate_gbps: link_gbps,
                ..LinkInfo::default()
            }),
            ..Sample::default()
        }
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-6)
    }

    #[test]
    fn given_a_first_sample_when_derived_then_there_is_no_rate() {
        let rates = derive(&BTreeMap::new(), &sample(1_000, 2_000, 10_000, Some(LINK)));
        assert!(rates.is_empty());
        let s = sample(1, 2, 3, Some(LINK));
        assert_eq!(metric(&s, &rates, Metric::UtilizationPct), None);
        assert_eq!(metric(&s, &rates, Metric::BandwidthGbps), None);
    }

    #[test]
    fn given_words_over_sample_time_when_derived_then_gbps_and_utilization_per_direction() {
        let prev = given_readings(0, 0, 0, 64);
        // Half the line rate out, a quarter in, over 2 s.
        let now = sample(
            WORDS_PER_S_AT_LINE_RATE,
            WORDS_PER_S_AT_LINE_RATE / 2,
            2_000,
            Some(LINK),
        );
        let rates = derive(&prev, &now);
        assert!(close(rates.tx_gbps, 50.0), "{rates:?}");
        assert!(close(rates.rx_gbps, 25.0), "{rates:?}");
        assert!(close(rates.tx_utilization, 50.0));
        assert!(close(rates.rx_utilization, 25.0));
        assert_eq!(rates.over_ms, Some(2_000));
        assert!(close(metric(&now, &rates, Metric::UtilizationPct), 50.0));
        assert!(close(metric(&now, &rates, Metric::BandwidthGbps), 50.0));
    }

    #[test]
    fn given_the_client_sent_gauges_then_its_own_values_stay() {
        let prev = given_readings(0, 0, 0, 64);
        let mut now = sample(WORDS_PER_S_AT_LINE_RATE, 0, 1_000, Some(LINK));
        now.utilization_pct = Some(12.0);
        let rates = derive(&prev, &now);
        assert_eq!(metric(&now, &rates, Metric::UtilizationPct), Some(12.0));
        assert!(close(metric(&now, &rates, Metric::BandwidthGbps), 100.0));
        now.bandwidth_gbps = Some(1.0);
        assert_eq!(metric(&now, &rates, Metric::BandwidthGbps), Some(1.0));
    }

    #[test]
    fn given_a_32_bit_counter_near_its_top_when_it_wraps_then_the_wrapped_delta_counts() {
        let top = u32::MAX as u64;
        let prev = given_readings(top - 999, top - 999, 0, 32);
        // 999 words to the top, 1 to wrap to 0, 1,000 past it: 2,000 × 32 bits in 1 ms = 0.064 Gb/s.
        let rates = derive(&prev, &sample(1_000, 1_000, 1, Some(LINK)));
        assert!(close(rates.tx_gbps, 0.064), "{rates:?}");
        assert!(close(rates.rx_gbps, 0.064), "{rates:?}");
    }

    #[test]
    fn given_a_32_bit_counter_that_went_down_far_when_derived_then_it_was_a_reset() {
        // From 1,000 to 10: a wrap would mean ~4.3e9 words in 1 s, past a 100 Gb/s link.
        let prev = given_readings(1_000, 1_000, 0, 32);
        let rates = derive(&prev, &sample(10, 10, 1_000, Some(LINK)));
        assert!(rates.is_empty(), "{rates:?}");
    }

    #[test]
    fn given_a_64_bit_counter_that_went_down_when_derived_then_it_was_a_reset() {
        let prev = given_readings(5_000_000_000, 5_000_000_000, 0, 64);
        let rates = derive(&prev, &sample(100, 100, 60_000, Some(LINK)));
        assert!(rates.is_empty(), "{rates:?}");
    }

    #[test]
    fn given_a_saturated_32_bit_counter_when_derived_then_there_is_no_rate() {
        let top = u32::MAX as u64;
        let prev = given_readings(top - 10, 0, 0, 32);
        let rates = derive(&prev, &sample(top, 100, 1_000, Some(LINK)));
        assert_eq!(rates.tx_gbps, None);
        assert!(rates.rx_gbps.is_some());
    }

    #[test]
    fn given_no_link_rate_when_derived_then_there_is_no_rate() {
        let prev = given_readings(0, 0, 0, 64);
        let now = sample(1_000, 1_000, 1_000, None);
        assert!(derive(&prev, &now).is_empty());
        assert!(derive(&prev, &sample(1_000, 1_000, 1_000, Some(0.0))).is_empty());
    }

    #[test]
    fn given_a_rate_past_the_link_when_derived_then_it_is_not_believed() {
        let prev = given_readings(0, 0, 0, 64);
        let rates = derive(
            &prev,
            &sample(WORDS_PER_S_AT_LINE_RATE * 2, 0, 1_000, Some(LINK)),
        );
        assert_eq!(rates.tx_gbps, None);
        assert!(close(rates.rx_gbps, 0.0));
    }

    fn with_qp(mut s: Sample, counters: &[(Counter, u64)]) -> Sample {
        s.counters.extend(counters.iter().copied());
        s
    }

    #[test]
    fn given_transport_error_counters_when_derived_then_their_increments_are_the_qp_errors() {
        let mut prev = given_readings(0, 0, 0, 64);
        for (c, v) in [
            (Counter::OutOfSequence, 10),
            (Counter::LocalAckTimeoutErr, 3),
        ] {
            prev.insert(
                c,
                CounterReading {
                    value: v,
                    timestamp_ms: 0,
                    width_bits: 64,
                },
            );
        }
        let now = with_qp(
            sample(0, 0, 10_000, None),
            &[
                (Counter::OutOfSequence, 25),
                (Counter::LocalAckTimeoutErr, 3),
                // First seen now: nothing to compare to, not counted.
                (Counter::RnrNakRetryErr, 7),
            ],
        );
        let rates = derive(&prev, &now);
        assert_eq!(rates.qp_errors, Some(15));
        assert_eq!(rates.tx_gbps, None, "no link rate");
        assert_eq!(metric(&now, &rates, Metric::QpErrors), Some(15.0));
        // A client's own qp_errors stays.
        let mut own = now.clone();
        own.qp_errors = Some(2);
        assert_eq!(metric(&own, &rates, Metric::QpErrors), Some(2.0));
    }

    #[test]
    fn given_a_cleared_transport_counter_when_derived_then_it_counts_from_zero() {
        let mut prev = BTreeMap::new();
        prev.insert(
            Counter::ReqCqeError,
            CounterReading {
                value: 500,
                timestamp_ms: 0,
                width_bits: 64,
            },
        );
        let now = with_qp(sample(0, 0, 1_000, None), &[(Counter::ReqCqeError, 4)]);
        assert_eq!(derive(&prev, &now).qp_errors, Some(4));
        // A first sample has none.
        assert_eq!(derive(&BTreeMap::new(), &now).qp_errors, None);
    }

    #[test]
    fn given_the_same_timestamp_when_derived_then_there_is_no_rate() {
        let prev = given_readings(0, 0, 5_000, 64);
        assert!(derive(&prev, &sample(10, 10, 5_000, Some(LINK))).is_empty());
    }
}
