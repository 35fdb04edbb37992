//! Given a stream's history, when its latency drifts or merely jitters, then detection opens
//! an anomaly or stays quiet.

use super::*;
use crate::detect::hysteresis::Transition;
use crate::sim::Rng;

fn sample(ts: i64, latency: f64) -> Sample {
    Sample {
        stream_id: "s".into(),
        timestamp_ms: ts,
        latency_p99_us: Some(latency),
        ..Default::default()
    }
}

/// Run `values` (one a second) through evaluate + absorb, applying openings as the stream
/// actor would; the sample indexes at which an anomaly opened.
fn run(values: &[f64]) -> Vec<usize> {
    let cfg = DetectConfig::default();
    let mut st = DetectorState::default();
    let mut opened = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let s = sample(i as i64 * 1000, *v);
        let eval = evaluate(&st, &s, &cfg);
        absorb(&mut st, &s, &eval, &cfg);
        for t in &eval.transitions {
            if let Transition::Opened(f) = t {
                opened.push(i);
                st.open.insert(
                    f.key(),
                    OpenAnomaly {
                        anomaly_id: f.key(),
                        rule: f.rule,
                        metric: f.metric.to_string(),
                        severity: f.severity,
                        opened_at_ms: s.timestamp_ms,
                        last_value: f.value,
                        clear_streak: 0,
                    },
                );
            }
        }
    }
    opened
}

fn jitter(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| 100.0 * (1.0 + 0.16 * (rng.unit() - 0.5)))
        .collect()
}

#[test]
fn given_ordinary_jitter_then_nothing_opens_in_a_day() {
    let mut rng = Rng::new(42);
    assert!(run(&jitter(&mut rng, 86_400 / 10)).is_empty());
}

#[test]
fn given_a_slow_drift_of_latency_then_it_is_found_before_it_doubles() {
    for seed in 0..8 {
        let mut rng = Rng::new(seed);
        let mut values = jitter(&mut rng, 40);
        // From +10 % to +90 % over 40 samples, with the same jitter.
        values.extend(
            jitter(&mut rng, 40)
                .iter()
                .enumerate()
                .map(|(k, v)| v * (1.1 + 0.02 * k as f64)),
        );
        let opened = run(&values);
        assert!(
            opened.first().is_some_and(|&i| i < 70),
            "seed {seed}: drift found at {opened:?}"
        );
    }
}
