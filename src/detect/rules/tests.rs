use super::*;

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
fn given_a_warm_latency_baseline_when_latency_moves_over_20_percent_then_it_deviates() {
    let b = warm(100.0);
    let up = gauge_findings(Metric::LatencyP99Us, 121.0, Some(&b), &cfg(), 0);
    assert_eq!(rules_of(&up), vec![Rule::BaselineDeviation]);
    let down = gauge_findings(Metric::LatencyP99Us, 79.0, Some(&b), &cfg(), 0);
    assert_eq!(rules_of(&down), vec![Rule::BaselineDeviation]);
    assert!((down[0].delta_pct.expect("delta") + 21.0).abs() < 1e-9);
    assert!(gauge_findings(Metric::LatencyP99Us, 119.0, Some(&b), &cfg(), 0).is_empty());
}

#[test]
fn given_a_job_step_when_utilization_or_bandwidth_moves_then_no_deviation_fires() {
    let b = warm(40.0);
    assert!(gauge_findings(Metric::UtilizationPct, 75.0, Some(&b), &cfg(), 0).is_empty());
    assert!(gauge_findings(Metric::BandwidthGbps, 10.0, Some(&b), &cfg(), 0).is_empty());
}

#[test]
fn given_a_noisy_baseline_when_the_value_is_within_k_sigma_then_nothing_fires() {
    // σ = 10 µs: 125 µs is 25 % away but only 2.5 σ.
    let noisy = Ewma {
        mean: 100.0,
        var: 100.0,
        count: 100,
    };
    assert!(gauge_findings(Metric::LatencyP99Us, 125.0, Some(&noisy), &cfg(), 0).is_empty());
    // 2.5x the baseline is 15 σ: a spike.
    let f = gauge_findings(Metric::LatencyP99Us, 250.0, Some(&noisy), &cfg(), 0);
    assert_eq!(rules_of(&f), vec![Rule::LatencySpike]);
}

#[test]
fn given_a_busy_link_then_saturation_is_only_a_warning() {
    let f = gauge_findings(Metric::UtilizationPct, 99.5, None, &cfg(), 0);
    assert_eq!(rules_of(&f), vec![Rule::UtilizationHigh]);
    assert_eq!(f[0].severity, Severity::Warning);
}

#[test]
fn deviation_ignores_baselines_below_the_noise_floor() {
    // An error rate of 0.0001 doubling is noise, not a 100 % incident.
    let b = warm(0.0001);
    assert!(gauge_findings(Metric::ErrorRate, 0.0002, Some(&b), &cfg(), 0).is_empty());
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
fn all_lists_every_rule_in_stored_order() {
    // bincode stores a rule as its index: ALL[i] must be index i, and index len must not exist
    let config = bincode::config::standard();
    for (i, rule) in Rule::ALL.iter().enumerate() {
        let bytes = bincode::serde::encode_to_vec(rule, config).expect("encode");
        assert_eq!(
            bytes,
            bincode::serde::encode_to_vec(i as u32, config).expect("index")
        );
    }
    let past = bincode::serde::encode_to_vec(Rule::ALL.len() as u32, config).expect("index");
    assert!(bincode::serde::decode_from_slice::<Rule, _>(&past, config).is_err());
}
