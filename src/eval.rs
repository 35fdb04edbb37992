//! Detection quality on a labelled scenario: run the simulator through an in-process node
//! (the real ingest, actors, detection, analyst and alert projection), read back what the log
//! says, and score it against the labels.

use crate::alerts::ALERT_STREAM;
use crate::config::Config;
use crate::events::StreamEvent;
use crate::node::Node;
use crate::sim::generator::{Label, Simulator};
use crate::sim::scenario::Scenario;
use crate::sim::score::{self, Observed, Report};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub struct Evaluation {
    pub report: Report,
    pub labels: Vec<Label>,
    pub observed: Vec<Observed>,
}

/// Run `scenario` through a fresh node built from `config` (its data dir is replaced by a
/// temporary one) and score the result.
pub async fn evaluate(mut config: Config, scenario: Scenario) -> anyhow::Result<Evaluation> {
    let dir = tempfile::Builder::new().prefix("ibsight-eval").tempdir()?;
    config.server.data_dir = dir.path().to_path_buf();
    let node = Node::start(config).await?;
    let duration_ms = scenario.duration_s as i64 * 1000;
    let base_ms = crate::clock::now_ms() - duration_ms - 120_000;
    let mut sim = Simulator::new(scenario, base_ms);
    let labels = sim.labels();
    let streams = sim.fabric.ports.len();
    let interval_ms = sim.interval_ms();
    while let Some(samples) = sim.next_tick() {
        node.ingestor.ingest(samples, Default::default()).await?;
    }
    settle(&node).await?;
    let observed = observe(&node)?;
    node.shutdown().await;
    Ok(Evaluation {
        report: score::score(&labels, &observed, streams, duration_ms, interval_ms),
        labels,
        observed,
    })
}

/// Wait until every anomaly has its insight and the alert projection has seen them all.
pub async fn settle(node: &Node) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut quiet = 0;
    while quiet < 3 {
        anyhow::ensure!(Instant::now() < deadline, "the node did not settle");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let idle = node.analyst.queue_depth() == 0;
        let caught_up = node
            .projections
            .iter()
            .all(|(_, lag)| lag.events_behind.load(Ordering::Relaxed) == 0);
        quiet = if idle && caught_up { quiet + 1 } else { 0 };
    }
    Ok(())
}

/// Every anomaly in the log, with its insight and whether it raised an alert.
pub fn observe(node: &Node) -> anyhow::Result<Vec<Observed>> {
    let store = node.writer.store();
    let mut anomalies: Vec<((String, u64), Observed)> = Vec::new();
    let mut insights: HashMap<(String, u64), (crate::analyst::insight::PredictionType, u8)> =
        HashMap::new();
    let mut alerted: HashMap<(String, u64), bool> = HashMap::new();
    let mut from = 1;
    loop {
        let page = store.read_from(from, 1000)?;
        let Some(last) = page.last() else { break };
        from = last.offset + 1;
        for e in &page {
            let r = &e.record;
            if !matches!(
                &*r.event_type,
                "AnomalyDetected" | "InsightGenerated" | "AlertRaised"
            ) {
                continue;
            }
            match r.decode_event()? {
                StreamEvent::AnomalyDetected(a) => anomalies.push((
                    (r.stream_id.clone(), r.seq),
                    Observed {
                        stream_id: r.stream_id.clone(),
                        at_ms: a.window_end_ms,
                        prediction: None,
                        risk: 0,
                        alerted: false,
                    },
                )),
                StreamEvent::InsightGenerated(i) => {
                    insights.insert(
                        (r.stream_id.clone(), i.anomaly_seq),
                        (i.prediction_type, i.risk_score),
                    );
                }
                StreamEvent::AlertRaised(a) if r.stream_id == ALERT_STREAM => {
                    alerted.insert((a.stream_id.clone(), a.anomaly_seq), true);
                }
                _ => {}
            }
        }
    }
    Ok(anomalies
        .into_iter()
        .map(|(key, mut o)| {
            if let Some((p, risk)) = insights.get(&key) {
                o.prediction = Some(*p);
                o.risk = *risk;
            }
            o.alerted = alerted.contains_key(&key);
            o
        })
        .collect())
}
