use super::*;
use crate::detect::counters::{CounterDelta, DeltaKind};

fn cfg() -> DetectConfig {
    DetectConfig::default()
}

fn warm(mean: f64) -> Ewma {
    Ewma {
        mean,
        var: 0.0,
        count: 100,
    }
}

fn cold(mean: f64) -> Ewma {
    Ewma {
        mean,
        var: 0.0,
        count: 3,
    }
}

fn rules_of(findings: &[Finding]) -> Vec<Rule> {
    findings.iter().map(|f| f.rule).collect()
}

#[test]
fn utilization_over_80_fires_even_without_baseline() {
    let f = gauge_findings(Metric::UtilizationPct, 85.0, None, &cfg(), 0);
    assert_eq!(rules_of(&f), vec![Rule::UtilizationHigh]);
    assert_eq!(f[0].severity, Severity::Warning);
    assert!(gauge_findings(Metric::UtilizationPct, 80.0, None, &cfg(), 0).is_empty());
    let f = gauge_findings(Metric::UtilizationPct, 99.0, None, &cfg(), 0);
    assert_eq!(f[0].severity, Severity::Critical);
}

#[test]
fn latency_spike_needs_a_warm_baseline() {
    let b = warm(5.0);
    let f = gauge_findings(Metric::LatencyP99Us, 10.5, Some(&b), &cfg(), 0);
    assert_eq!(rules_of(&f), vec![Rule::LatencySpike]);
    assert_eq!(f[0].baseline, Some(5.0));
    assert!((f[0].delta_pct.expect("delta") - 110.0).abs() < 1e-9);
    assert_eq!(f[0].threshold, 10.0);
    // Exactly 2x is not over 2x; and the deviation rule takes it instead.
    let f = gauge_findings(Metric::LatencyP99Us, 10.0, Some(&b), &cfg(), 0);
    assert_eq!(rules_of(&f), vec![Rule::BaselineDeviation]);
    // During warm-up nothing baseline-relative fires.
    assert!(gauge_findings(Metric::LatencyP99Us, 50.0, Some(&cold(5.0)), &cfg(), 0).is_empty());
}

#[test]
fn error_rate_over_5_percent() {
    let f = gauge_findings(Metric::ErrorRate, 0.06, None, &cfg(), 0);
    assert_eq!(rules_of(&f), vec![Rule::ErrorRateHigh]);
    assert!(gauge_findings(Metric::ErrorRate, 0.05, None, &cfg(), 0).is_empty());
    let f = gauge_findings(Metric::ErrorRate, 0.5, None, &cfg(), 0);
    assert_eq!(f[0].severity, Severity::Critical);
}

#[test]
fn deviation_over_20_percent_either_way() {
    let b = warm(100.0);
    let up = gauge_findings(Metric::BandwidthGbps, 121.0, Some(&b), &cfg(), 0);
    assert_eq!(rules_of(&up), vec![Rule::BaselineDeviation]);
    let down = gauge_findings(Metric::BandwidthGbps, 79.0, Some(&b), &cfg(), 0);
    assert_eq!(rules_of(&down), vec![Rule::BaselineDeviation]);
    assert!((down[0].delta_pct.expect("delta") + 21.0).abs() < 1e-9);
    assert!(gauge_findings(Metric::BandwidthGbps, 119.0, Some(&b), &cfg(), 0).is_empty());
}

#[test]
fn deviation_ignores_baselines_below_the_noise_floor() {
    // An error rate of 0.0001 doubling is noise, not a 100 % incident.
    let b = warm(0.0001);
    assert!(gauge_findings(Metric::ErrorRate, 0.0002, Some(&b), &cfg(), 0).is_empty());
}

fn delta(delta: u64, elapsed_ms: i64, kind: DeltaKind) -> CounterDelta {
    CounterDelta {
        delta,
        elapsed_ms,
        kind,
    }
}

#[test]
fn any_link_downed_increment_is_critical() {
    let f = counter_findings(
        Counter::LinkDownedCounter,
        &delta(1, 60_000, DeltaKind::Normal),
        &cfg(),
        0,
    );
    assert_eq!(rules_of(&f), vec![Rule::LinkDowned]);
    assert_eq!(f[0].severity, Severity::Critical);
    assert!(counter_findings(
        Counter::LinkDownedCounter,
        &delta(0, 60_000, DeltaKind::Normal),
        &cfg(),
        0
    )
    .is_empty());
}

#[test]
fn symbol_errors_are_judged_per_hour_of_sample_time() {
    // 3 errors in 60 s = 180/h > 120/h.
    let f = counter_findings(
        Counter::SymbolErrorCounter,
        &delta(3, 60_000, DeltaKind::Normal),
        &cfg(),
        0,
    );
    assert_eq!(rules_of(&f), vec![Rule::SymbolErrors]);
    assert!((f[0].value - 180.0).abs() < 1e-9);
    // 1 error in 60 s = 60/h: fine.
    assert!(counter_findings(
        Counter::SymbolErrorCounter,
        &delta(1, 60_000, DeltaKind::Normal),
        &cfg(),
        0
    )
    .is_empty());
}

#[test]
fn rate_rules_for_recovery_receive_errors_discards_and_wait() {
    let cases = [
        (
            Counter::LinkErrorRecoveryCounter,
            6,
            60_000,
            Rule::LinkErrorRecovery,
        ),
        (Counter::PortRcvErrors, 11, 1_000, Rule::PortRcvErrors),
        (Counter::PortXmitDiscards, 101, 1_000, Rule::XmitDiscards),
        (Counter::PortXmitWait, 1_000_001, 1_000, Rule::Congestion),
    ];
    for (counter, d, ms, rule) in cases {
        let f = counter_findings(counter, &delta(d, ms, DeltaKind::Normal), &cfg(), 0);
        assert_eq!(rules_of(&f), vec![rule], "{counter:?}");
        let under = counter_findings(counter, &delta(d - 1, ms, DeltaKind::Normal), &cfg(), 0);
        assert!(
            under.is_empty(),
            "{counter:?} at threshold fired: {under:?}"
        );
    }
}

#[test]
fn a_saturated_counter_is_not_an_anomaly() {
    let f = counter_findings(
        Counter::SymbolErrorCounter,
        &delta(0, 1000, DeltaKind::Saturated),
        &cfg(),
        0,
    );
    assert!(f.is_empty(), "{f:?}");
}

#[test]
fn qp_errors_are_a_rate_over_sample_time() {
    // 30 errors over 10 s = 3/s > 1/s.
    let f = qp_finding(30.0, 10_000, &cfg(), 0).expect("fires");
    assert_eq!(f.rule, Rule::QpErrorsHigh);
    assert!((f.value - 3.0).abs() < 1e-9);
    assert!(
        qp_finding(10.0, 10_000, &cfg(), 0).is_none(),
        "1/s is not over 1/s"
    );
    assert!(
        qp_finding(30.0, 0, &cfg(), 0).is_none(),
        "no rate without elapsed time"
    );
}

#[test]
fn a_reset_counts_only_what_was_counted_since() {
    // Cleared from 60000 to 2 within a minute: 2 errors, not a negative or huge delta.
    let f = counter_findings(
        Counter::SymbolErrorCounter,
        &delta(2, 60_000, DeltaKind::Reset),
        &cfg(),
        0,
    );
    assert!(f.is_empty(), "{f:?}");
}
