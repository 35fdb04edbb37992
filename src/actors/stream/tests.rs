//! Given/when/then tests of the stream's decisions: given the samples a stream has seen,
//! when a new sample arrives, then these events are recorded.

use super::state::{apply, decide, Decision, StreamState};
use crate::detect::rules::{Rule, Severity};
use crate::detect::DetectConfig;
use crate::events::StreamEvent;
use crate::sample::{Counter, Sample};
use std::collections::BTreeMap;

fn cfg() -> DetectConfig {
    DetectConfig {
        warmup_samples: 5,
        ..DetectConfig::default()
    }
}

fn sample(ts_s: i64) -> Sample {
    Sample {
        stream_id: "sw1/p1".into(),
        timestamp_ms: ts_s * 1000,
        latency_p99_us: Some(5.0),
        utilization_pct: Some(50.0),
        error_rate: None,
        bandwidth_gbps: None,
        qp_errors: None,
        counters: BTreeMap::new(),
        labels: BTreeMap::new(),
        ..Default::default()
    }
}

fn with_util(ts_s: i64, util: f64) -> Sample {
    Sample {
        utilization_pct: Some(util),
        ..sample(ts_s)
    }
}

fn with_counter(ts_s: i64, counter: Counter, value: u64) -> Sample {
    let mut s = sample(ts_s);
    s.counters.insert(counter, value);
    s
}

struct Scenario {
    state: StreamState,
    cfg: DetectConfig,
}

fn given(samples: impl IntoIterator<Item = Sample>) -> Scenario {
    let cfg = cfg();
    let mut state = StreamState::new("sw1/p1");
    for s in samples {
        if let Decision::Record(events) | Decision::Late(events) = decide(&state, &s, &cfg) {
            for e in &events {
                apply(&mut state, e, &cfg);
            }
        }
    }
    Scenario { state, cfg }
}

impl Scenario {
    /// Decide on `s`, apply what was decided, and return the events.
    fn when(&mut self, s: Sample) -> Vec<StreamEvent> {
        match decide(&self.state, &s, &self.cfg) {
            Decision::Duplicate => Vec::new(),
            Decision::Record(events) | Decision::Late(events) => {
                for e in &events {
                    apply(&mut self.state, e, &self.cfg);
                }
                events
            }
        }
    }
}

fn kinds(events: &[StreamEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            StreamEvent::MetricObserved(_) => "observed".to_string(),
            StreamEvent::AnomalyDetected(a) => format!(
                "detected {} {}{}",
                a.rule.name(),
                a.severity.name(),
                a.escalated_from
                    .map(|s| format!(" from {}", s.name()))
                    .unwrap_or_default()
            ),
            StreamEvent::AnomalyResolved(a) => format!("resolved {}", a.rule.name()),
            StreamEvent::InsightGenerated(i) => format!("insight for {}", i.anomaly_seq),
            other => other.event_type().to_string(),
        })
        .collect()
}

fn steady(n: i64) -> Vec<Sample> {
    (1..=n).map(sample).collect()
}

#[test]
fn a_normal_sample_is_only_observed() {
    let mut s = given(steady(10));
    assert_eq!(kinds(&s.when(sample(11))), vec!["observed"]);
    assert_eq!(s.state.last_seq, 11);
}

#[test]
fn an_exact_repeat_of_a_recent_sample_is_a_duplicate() {
    let s = given(steady(10));
    assert_eq!(decide(&s.state, &sample(10), &s.cfg), Decision::Duplicate);
    assert_eq!(decide(&s.state, &sample(3), &s.cfg), Decision::Duplicate);
}

#[test]
fn a_different_sample_at_or_before_the_last_timestamp_is_late_data() {
    let mut s = given(steady(10));
    let baselines = s.state.detector.baselines.clone();
    // Same timestamp, other content; then 4 s older with other values.
    for late in [with_util(10, 70.0), with_util(6, 99.0)] {
        assert!(matches!(
            decide(&s.state, &late, &s.cfg),
            Decision::Late(ref events) if kinds(events) == vec!["observed"]
        ));
        assert_eq!(kinds(&s.when(late.clone())), vec!["observed"]);
        // Stored, but the baselines never see it and no rule fires on it.
        assert_eq!(s.state.detector.baselines, baselines);
        assert_eq!(s.state.detector.last_timestamp_ms, Some(10_000));
        // Its retry is a duplicate.
        assert_eq!(decide(&s.state, &late, &s.cfg), Decision::Duplicate);
    }
    assert_eq!(s.state.last_seq, 12);
}

#[test]
fn a_repeat_older_than_the_remembered_samples_is_stored_as_late_not_lost() {
    let s = given(steady(40));
    // Sample 1 left the window of remembered samples long ago.
    assert!(matches!(
        decide(&s.state, &sample(1), &s.cfg),
        Decision::Late(_)
    ));
}

#[test]
fn recovery_replays_late_data_to_the_same_state() {
    let cfg = cfg();
    let mut live = StreamState::new("sw1/p1");
    let mut log = Vec::new();
    for smp in steady(10)
        .into_iter()
        .chain([with_util(4, 90.0), sample(11), sample(11)])
    {
        match super::state::step(&mut live, &smp, &cfg) {
            Decision::Record(events) | Decision::Late(events) => log.extend(events),
            Decision::Duplicate => {}
        }
    }
    let mut rebuilt = StreamState::new("sw1/p1");
    for e in &log {
        apply(&mut rebuilt, e, &cfg);
    }
    assert_eq!(rebuilt, live);
    assert_eq!(live.last_seq, 12);
}

#[test]
fn snapshot_layout_is_pinned() {
    // Golden bytes of a small state: when this fails, the state's layout changed. Bump
    // `STATE_VERSION` and update the bytes, so old snapshots are rebuilt from the log instead
    // of being misdecoded.
    let mut s = given([with_counter(1, Counter::SymbolErrorCounter, 3)]);
    s.when(with_util(2, 50.0));
    let bytes = crate::events::codec::encode_state(super::state::STATE_VERSION, &s.state);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex, GOLDEN_STATE_HEX,
        "StreamState layout changed: bump STATE_VERSION"
    );
    let back: StreamState =
        crate::events::codec::decode_state(super::state::STATE_VERSION, &bytes).expect("decode");
    assert_eq!(back, s.state);
    assert!(crate::events::codec::decode_state::<StreamState>(
        super::state::STATE_VERSION + 1,
        &bytes
    )
    .is_err());
}

const GOLDEN_STATE_HEX: &str = concat!(
    "696253010700067377312f70310202000000000000001440000000000000000002010000000000004940",
    "000000000000000002010003fbd007100001fba00f00000000000000000000000000000001067377312f",
    "7031fba00f01000000000000144001000000000000494000000000000000000000000000000000000000",
    "0002fbd007fd578f85e2dd914fb9fba00ffd2d5e5033a2b16668",
);

#[test]
fn a_gauge_anomaly_opens_after_persisting_then_holds_while_the_condition_lasts() {
    let mut s = given(steady(10));
    assert_eq!(kinds(&s.when(with_util(11, 85.0))), vec!["observed"]);
    assert_eq!(kinds(&s.when(with_util(12, 86.0))), vec!["observed"]);
    assert_eq!(
        kinds(&s.when(with_util(13, 85.0))),
        vec!["observed", "detected utilization_high warning"]
    );
    assert_eq!(kinds(&s.when(with_util(14, 84.0))), vec!["observed"]);
    assert_eq!(s.state.detector.open.len(), 1);
}

#[test]
fn a_single_outlier_opens_nothing() {
    let mut s = given(steady(10));
    s.when(with_util(11, 95.0));
    s.when(with_util(12, 50.0));
    assert_eq!(kinds(&s.when(with_util(13, 95.0))), vec!["observed"]);
    assert!(s.state.detector.open.is_empty());
}

fn with_latency(ts_s: i64, latency: f64) -> Sample {
    Sample {
        latency_p99_us: Some(latency),
        ..sample(ts_s)
    }
}

#[test]
fn the_evidence_names_rule_metric_value_baseline_and_window() {
    let mut s = given(steady(10));
    s.when(with_latency(11, 20.0));
    s.when(with_latency(12, 20.0));
    let events = s.when(with_latency(13, 20.0));
    let StreamEvent::AnomalyDetected(a) = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!(a.rule, Rule::LatencySpike);
    assert_eq!(a.metric, "latency_p99");
    assert_eq!(a.value, 20.0);
    assert_eq!(
        a.baseline,
        Some(5.0),
        "a firing value does not teach the baseline"
    );
    assert_eq!(a.delta_pct, Some(300.0));
    assert_eq!((a.window_start_ms, a.window_end_ms), (12_000, 13_000));
}

#[test]
fn a_worse_reading_escalates_the_open_anomaly() {
    let mut s = given(steady(10));
    for t in 11..=13 {
        s.when(with_latency(t, 11.0));
    }
    let events = s.when(with_latency(14, 50.0));
    assert_eq!(
        kinds(&events),
        vec!["observed", "detected latency_spike critical from warning"]
    );
    let StreamEvent::AnomalyDetected(a) = &events[1] else {
        panic!()
    };
    assert_eq!(
        a.anomaly_id, "latency_spike:latency_p99@13000",
        "same anomaly"
    );
    assert_eq!(
        s.state.detector.open.values().next().map(|a| a.severity),
        Some(Severity::Critical)
    );
}

#[test]
fn an_anomaly_resolves_after_three_clear_samples() {
    let mut s = given(steady(10));
    for t in 11..=13 {
        s.when(with_util(t, 85.0));
    }
    assert_eq!(kinds(&s.when(with_util(14, 50.0))), vec!["observed"]);
    assert_eq!(kinds(&s.when(with_util(15, 50.0))), vec!["observed"]);
    assert_eq!(
        kinds(&s.when(with_util(16, 50.0))),
        vec!["observed", "resolved utilization_high"]
    );
    assert!(s.state.detector.open.is_empty());
    // And it can open again afterwards, once it persists again.
    s.when(with_util(17, 90.0));
    s.when(with_util(18, 90.0));
    assert_eq!(
        kinds(&s.when(with_util(19, 90.0))),
        vec!["observed", "detected utilization_high warning"]
    );
}

#[test]
fn a_flapping_condition_does_not_reopen() {
    let mut s = given(steady(10));
    for t in 11..=13 {
        s.when(with_util(t, 85.0));
    }
    s.when(with_util(14, 50.0));
    s.when(with_util(15, 50.0));
    assert_eq!(kinds(&s.when(with_util(16, 85.0))), vec!["observed"]);
    assert_eq!(kinds(&s.when(with_util(17, 50.0))), vec!["observed"]);
}

#[test]
fn one_link_down_event_is_a_reboot_and_three_in_the_hour_are_a_flapping_link() {
    let mut s = given([with_counter(1, Counter::LinkDownedCounter, 4)]);
    assert_eq!(
        kinds(&s.when(with_counter(2, Counter::LinkDownedCounter, 5))),
        vec!["observed"]
    );
    assert_eq!(
        kinds(&s.when(with_counter(30, Counter::LinkDownedCounter, 7))),
        vec!["observed", "detected link_downed critical"]
    );
}

#[test]
fn a_counter_reset_is_not_a_burst_of_errors() {
    let mut s = given([with_counter(0, Counter::SymbolErrorCounter, 60_000)]);
    // Cleared by an operator: 60000 → 1 within a minute is one error, not −59999 or 2^16.
    assert_eq!(
        kinds(&s.when(with_counter(60, Counter::SymbolErrorCounter, 1))),
        vec!["observed"]
    );
}

#[test]
fn a_constant_error_count_is_nothing() {
    let mut s = given([with_counter(0, Counter::PortRcvErrors, 9_000)]);
    for t in 1..20 {
        assert_eq!(
            kinds(&s.when(with_counter(t * 10, Counter::PortRcvErrors, 9_000))),
            vec!["observed"]
        );
    }
}

#[test]
fn a_saturated_counter_opens_its_own_anomaly_until_it_is_reset() {
    let mut s = given([with_counter(0, Counter::SymbolErrorCounter, 65_530)]);
    let first = s.when(with_counter(3600, Counter::SymbolErrorCounter, 65_535));
    assert_eq!(
        kinds(&first),
        vec!["observed", "detected counter_saturated warning"]
    );
    // Stuck: held, and never a clear sample.
    for t in 1..5 {
        let stuck = s.when(with_counter(
            3600 + t * 10,
            Counter::SymbolErrorCounter,
            65_535,
        ));
        assert_eq!(kinds(&stuck), vec!["observed"]);
    }
    // Reset: clears after the usual clear samples; the reset itself raises nothing.
    s.when(with_counter(3700, Counter::SymbolErrorCounter, 0));
    s.when(with_counter(3710, Counter::SymbolErrorCounter, 0));
    assert_eq!(
        kinds(&s.when(with_counter(3720, Counter::SymbolErrorCounter, 0))),
        vec!["observed", "resolved counter_saturated"]
    );
}

#[test]
fn a_qp_error_storm_is_detected() {
    let mut s = given(steady(10));
    let storm = |t| Sample {
        qp_errors: Some(50),
        ..sample(t)
    };
    s.when(storm(11));
    s.when(storm(12));
    assert_eq!(
        kinds(&s.when(storm(13))),
        vec!["observed", "detected qp_errors_high critical"]
    );
}

#[test]
fn detection_uses_sample_time_not_arrival_time() {
    // The same counter delta is a symbol-error storm over 10 s and harmless over a day.
    let mut fast = given([with_counter(0, Counter::SymbolErrorCounter, 0)]);
    assert_eq!(
        kinds(&fast.when(with_counter(10, Counter::SymbolErrorCounter, 50))),
        vec!["observed", "detected symbol_errors critical"]
    );
    let mut slow = given([with_counter(0, Counter::SymbolErrorCounter, 0)]);
    assert_eq!(
        kinds(&slow.when(with_counter(86_400, Counter::SymbolErrorCounter, 50))),
        vec!["observed"]
    );
}

#[test]
fn replaying_the_events_rebuilds_the_same_state() {
    let mut s = given(steady(10));
    let mut log = Vec::new();
    for (i, u) in [85.0, 99.0, 50.0, 50.0, 50.0, 91.0].iter().enumerate() {
        log.extend(s.when(with_util(11 + i as i64, *u)));
    }
    let mut replayed = given(steady(10)).state;
    for e in &log {
        apply(&mut replayed, e, &s.cfg);
    }
    assert_eq!(replayed, s.state);
}

#[test]
fn step_equals_decide_then_apply() {
    let cfg = cfg();
    let mut samples = steady(12);
    samples.extend([
        with_util(13, 85.0),
        with_util(14, 99.0),
        with_counter(15, Counter::LinkDownedCounter, 1),
        with_counter(16, Counter::LinkDownedCounter, 2),
        with_util(16, 10.0),
        with_util(17, 50.0),
        with_util(18, 50.0),
        with_util(19, 50.0),
    ]);
    let mut stepped = StreamState::new("sw1/p1");
    let mut decided = StreamState::new("sw1/p1");
    for s in &samples {
        let by_step = super::state::step(&mut stepped, s, &cfg);
        let by_decide = match decide(&decided, s, &cfg) {
            Decision::Duplicate => Decision::Duplicate,
            Decision::Record(events) => {
                for e in &events {
                    apply(&mut decided, e, &cfg);
                }
                Decision::Record(events)
            }
            Decision::Late(events) => {
                for e in &events {
                    apply(&mut decided, e, &cfg);
                }
                Decision::Late(events)
            }
        };
        assert_eq!(by_step, by_decide, "at t={}", s.timestamp_ms);
        assert_eq!(stepped, decided, "at t={}", s.timestamp_ms);
    }
    assert!(
        stepped.last_seq > samples.len() as u64 - 1,
        "anomalies were exercised"
    );
}

#[test]
fn a_samples_digest_is_the_digest_of_its_stored_payload() {
    // Given a sample with counters, labels and a port, stored as a v3 MetricObserved payload
    let mut sample =
        crate::sim::steady_sample(&mut crate::sim::Rng::new(3), 7, 12, 1_700_000_000_000);
    sample.labels.insert("rack".into(), "r1".into());
    sample.port.node_desc = Some("sw7 HCA-1".into());
    let event = StreamEvent::MetricObserved(crate::events::types::MetricObservedV3 {
        sample: sample.clone(),
    });
    assert_eq!(event.schema_version(), 3);
    let payload = crate::events::codec::encode_payload(&event);
    // Then hashing the payload gives the sample's digest (the audit skips re-encoding)
    assert_eq!(
        super::state::digest_of_payload(&payload),
        super::state::digest(&sample)
    );
}
