//! Detection quality on the bundled scenarios, through an in-process node with the rules
//! analyst: every fault class detected with the right type, no anomaly from counter resets or
//! saturation, nothing on a healthy fabric, and the targets met.

use ibsight::config::Config;
use ibsight::eval::evaluate;
use ibsight::sim::faults::FaultKind;
use ibsight::sim::scenario::Scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_class_is_detected_and_named_right() {
    let eval = evaluate(Config::default(), Scenario::load("mixed").expect("mixed"))
        .await
        .expect("eval");
    let r = &eval.report;
    for kind in FaultKind::ALL.iter().filter(|k| k.expected().is_some()) {
        let class = &r.per_class[kind.name()];
        assert_eq!(
            class.detected,
            class.incidents,
            "{} missed: {r:?}",
            kind.name()
        );
        assert_eq!(
            class.type_correct,
            class.detected,
            "{} misnamed: {r:?}",
            kind.name()
        );
    }
    assert!(r.recall >= 0.95 && r.type_accuracy >= 0.90, "{r:?}");
    assert!(r.critical_alert_false_positive_rate < 0.05, "{r:?}");
    assert!(r.ttd_median_samples <= 3.0, "{r:?}");

    // Counter resets and saturation are not faults: no anomaly on those streams.
    for label in eval.labels.iter().filter(|l| l.expected.is_none()) {
        let noisy: Vec<_> = eval
            .observed
            .iter()
            .filter(|o| label.streams.contains(&o.stream_id))
            .collect();
        assert!(
            noisy.is_empty(),
            "{:?} produced anomalies: {noisy:?}",
            label.kind
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_fabric_raises_nothing() {
    let eval = evaluate(
        Config::default(),
        Scenario::load("healthy").expect("healthy"),
    )
    .await
    .expect("eval");
    assert!(eval.observed.is_empty(), "{:?}", eval.observed);
    assert_eq!(eval.report.critical_alerts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_storm_is_caught_on_every_port_with_deduplicated_alerts() {
    let eval = evaluate(
        Config::default(),
        Scenario::load("switch-storm").expect("storm"),
    )
    .await
    .expect("eval");
    let r = &eval.report;
    assert_eq!(r.recall, 1.0, "{r:?}");
    assert_eq!(r.type_accuracy, 1.0, "{r:?}");
    // One alert per (port, prediction type) despite repeated flaps over 40 s.
    let ports =
        r.per_class["switch_event"].incidents + r.per_class["resource_saturation"].incidents;
    assert!(
        r.critical_alerts <= ports,
        "{} alerts for {ports} ports",
        r.critical_alerts
    );
}
