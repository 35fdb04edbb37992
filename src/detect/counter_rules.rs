//! Counter rules. Error counters are judged on windows of sample time (`window`), never on
//! one gap: a rate per hour, or for symbol errors a bit error rate over the link's rate. A
//! short window catches a burst (at least `MIN_BURST` events), the long window a slow, steady
//! rate. PortXmitWait becomes the fraction of time the port was stalled. A saturated counter
//! is its own finding: errors are no longer counted until someone records and resets it.

use super::counters::{CounterDelta, CounterReading};
use super::rules::{Finding, Rule, Severity};
use super::window::ErrorWindow;
use super::DetectConfig;
use crate::sample::port::LinkInfo;
use crate::sample::{counter_max_for_width, Counter};

/// Fewer events than this in the short window are not a rate (one reboot, one retrain).
pub const MIN_BURST: u64 = 3;

/// The rule of an error counter judged as a rate per hour; `None` for counters no such rule
/// reads. Symbol errors have their own (BER) rule.
fn rate_rule(counter: Counter) -> Option<Rule> {
    use Counter::*;
    Some(match counter {
        LinkErrorRecoveryCounter => Rule::LinkErrorRecovery,
        LinkDownedCounter => Rule::LinkDowned,
        LocalLinkIntegrityErrors => Rule::LinkIntegrity,
        PortRcvErrors => Rule::PortRcvErrors,
        PortRcvRemotePhysicalErrors => Rule::RemotePhysical,
        PortXmitDiscards => Rule::XmitDiscards,
        PortXmitConstraintErrors | PortRcvConstraintErrors => Rule::ConstraintErrors,
        VL15Dropped => Rule::Vl15Dropped,
        _ => return None,
    })
}

/// The threshold per hour of a rate rule.
fn per_hour(rule: Rule, cfg: &DetectConfig) -> f64 {
    match rule {
        Rule::LinkErrorRecovery => cfg.link_recoveries_per_hour,
        Rule::LinkDowned => cfg.link_downs_per_hour,
        Rule::LinkIntegrity => cfg.link_integrity_per_hour,
        Rule::PortRcvErrors => cfg.rcv_errors_per_hour,
        Rule::RemotePhysical => cfg.remote_physical_per_hour,
        Rule::XmitDiscards => cfg.xmit_discards_per_hour,
        Rule::ConstraintErrors => cfg.constraint_errors_per_hour,
        _ => cfg.vl15_dropped_per_hour,
    }
}

/// Whether any rule reads `counter` (only those are windowed and checked for saturation).
pub fn is_watched(counter: Counter) -> bool {
    matches!(
        counter,
        Counter::SymbolErrorCounter | Counter::ExcessiveBufferOverrunErrors | Counter::PortXmitWait
    ) || rate_rule(counter).is_some()
}

fn finding(rule: Rule, counter: Counter, value: f64, threshold: f64, start: i64) -> Finding {
    Finding {
        rule,
        metric: counter.name(),
        value,
        baseline: None,
        delta_pct: None,
        threshold,
        severity: Severity::from_ratio(if threshold > 0.0 {
            value / threshold
        } else {
            4.0
        }),
        window_start_ms: start,
    }
}

/// The windowed findings of an error counter whose increments (this sample's included) are in
/// `window`, at sample time `now_ms`.
pub fn window_findings(
    counter: Counter,
    window: &ErrorWindow,
    link: Option<&LinkInfo>,
    cfg: &DetectConfig,
    now_ms: i64,
) -> Option<Finding> {
    let (short, long) = (cfg.short_window_ms(), cfg.long_window_ms());
    let burst = window.count(now_ms, short) >= MIN_BURST;
    // The rate over a window, per hour; the short window only once it holds a burst.
    let rate = |len: i64| window.per_hour(now_ms, len);
    // At the threshold fires: "3 per hour" means three events within an hour.
    let reaches = |r: f64, threshold: f64| r > 0.0 && r >= threshold;
    let worst = |threshold: f64| -> Option<(f64, i64)> {
        let (rs, rl) = (rate(short), rate(long));
        if burst && reaches(rs, threshold) && rs >= rl {
            Some((rs, now_ms - short))
        } else if reaches(rl, threshold) {
            Some((rl, now_ms - long))
        } else {
            None
        }
    };
    match counter {
        Counter::ExcessiveBufferOverrunErrors => {
            // NVIDIA classes any increase as fatal: a receive buffer overflowed.
            let n = window.count(now_ms, short);
            (n > 0).then(|| {
                let mut f = finding(Rule::BufferOverrun, counter, n as f64, 0.0, now_ms - short);
                f.severity = Severity::Critical;
                f
            })
        }
        Counter::SymbolErrorCounter => {
            let gbps = link.and_then(|l| l.rate_gbps).filter(|g| *g > 0.0);
            match gbps {
                Some(g) => {
                    let max = cfg.symbol_ber_for(link.and_then(|l| l.speed));
                    // Errors per hour at the threshold BER: max × bits per hour.
                    let per_hour_at_max = max * g * 1e9 * 3600.0;
                    worst(per_hour_at_max).map(|(r, start)| {
                        let ber = r / (g * 1e9 * 3600.0);
                        finding(Rule::SymbolErrors, counter, ber, max, start)
                    })
                }
                None => worst(cfg.symbol_errors_per_hour).map(|(r, start)| {
                    finding(
                        Rule::SymbolErrors,
                        counter,
                        r,
                        cfg.symbol_errors_per_hour,
                        start,
                    )
                }),
            }
        }
        _ => {
            let rule = rate_rule(counter)?;
            let threshold = per_hour(rule, cfg);
            worst(threshold).map(|(r, start)| finding(rule, counter, r, threshold, start))
        }
    }
}

/// PortXmitWait over one gap as the fraction of time stalled; `None` when the tick length is
/// unknown (no link rate and no configured tick).
pub fn stall_fraction(
    delta: &CounterDelta,
    link: Option<&LinkInfo>,
    cfg: &DetectConfig,
) -> Option<f64> {
    if delta.elapsed_ms <= 0 {
        return None;
    }
    let tick_ns = match cfg.xmit_wait_tick_ns {
        Some(t) => t,
        // The time to send one 64-byte credit block at the link's rate.
        None => 512.0 / link.and_then(|l| l.rate_gbps).filter(|g| *g > 0.0)?,
    };
    let stalled_ns = delta.delta as f64 * tick_ns;
    Some((stalled_ns / (delta.elapsed_ms as f64 * 1e6)).min(1.0))
}

/// Congestion on one gap (persistence over samples is the detector's job).
pub fn congestion_finding(
    delta: &CounterDelta,
    link: Option<&LinkInfo>,
    cfg: &DetectConfig,
    start_ms: i64,
) -> Option<Finding> {
    let fraction = stall_fraction(delta, link, cfg)?;
    (fraction > cfg.congestion_stall_fraction).then(|| {
        finding(
            Rule::Congestion,
            Counter::PortXmitWait,
            fraction,
            cfg.congestion_stall_fraction,
            start_ms,
        )
    })
}

/// A watched counter stuck at its all-ones value: errors are no longer counted.
pub fn saturation_finding(counter: Counter, reading: &CounterReading) -> Option<Finding> {
    let max = counter_max_for_width(reading.width_bits);
    (is_watched(counter) && reading.width_bits < 64 && reading.value == max).then(|| Finding {
        rule: Rule::CounterSaturated,
        metric: counter.name(),
        value: reading.value as f64,
        baseline: None,
        delta_pct: None,
        threshold: max as f64,
        severity: Severity::Warning,
        window_start_ms: reading.timestamp_ms,
    })
}

#[cfg(test)]
mod tests;
