//! Detection quality on the bundled scenarios, through an in-process node with the rules
//! analyst: every fault class detected with the right type and incident scope, nothing from a
//! counter reset, nothing on a healthy fabric's ordinary life, one alert per switch event.
//! (The long scenario, 10,000 stream-hours, is run by `ibsight eval --scenario long-noisy`.)

use ibsight::config::Config;
use ibsight::eval::evaluate;
use ibsight::sim::faults::FaultKind;
use ibsight::sim::scenario::Scenario;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_class_is_detected_named_and_grouped_right() {
    let eval = evaluate(Config::default(), Scenario::load("mixed").expect("mixed"))
        .await
        .expect("eval");
    let r = &eval.report;
    let in_mixed = FaultKind::ALL
        .iter()
        .filter(|k| k.expected().is_some() && **k != FaultKind::SwitchDown);
    for kind in in_mixed {
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
        assert_eq!(
            class.scope_correct,
            class.faults,
            "{} misgrouped: {r:?}",
            kind.name()
        );
    }
    assert!(
        r.recall >= 0.99 && r.type_accuracy >= 0.95 && r.scope_accuracy >= 0.95,
        "{r:?}"
    );
    assert_eq!(r.false_insights, 0, "{r:?}");
    assert!(r.critical_alert_false_positive_rate < 0.05, "{r:?}");
    assert_eq!(r.alerts_per_switch_event, 1.0, "{r:?}");

    // A counter reset is not a fault: no anomaly on that stream.
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
    assert!(eval.incidents.is_empty(), "{:?}", eval.incidents);
    assert_eq!(eval.report.critical_alerts, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_switch_failure_is_one_switch_incident_with_one_alert() {
    let eval = evaluate(
        Config::default(),
        Scenario::load("switch-storm").expect("storm"),
    )
    .await
    .expect("eval");
    let r = &eval.report;
    assert_eq!(r.recall, 1.0, "{r:?}");
    assert_eq!(r.type_accuracy, 1.0, "{r:?}");
    assert_eq!(r.scope_accuracy, 1.0, "{r:?}");
    assert_eq!(r.alerts_per_switch_event, 1.0, "{r:?}");
    assert_eq!(r.false_insights, 0, "{r:?}");
}
