//! Detection quality on a labelled scenario: run the simulator through an in-process node
//! (the real ingest, actors, detection, analyst and alert projection), read back what the log
//! says, and score it against the labels.

use crate::alerts::ALERT_STREAM;
use crate::analyst::insight::PredictionType;
use crate::config::Config;
use crate::events::types::IncidentScope;
use crate::events::StreamEvent;
use crate::incidents::INCIDENT_STREAM;
use crate::node::Node;
use crate::sim::generator::{Label, Simulator};
use crate::sim::scenario::Scenario;
use crate::sim::score::{self, IncidentObserved, Observed, Report};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub struct Evaluation {
    pub report: Report,
    pub labels: Vec<Label>,
    pub observed: Vec<Observed>,
    pub incidents: Vec<IncidentObserved>,
    pub quality: AnalystQuality,
}

/// How the model answered the incidents of a run, from the insights in the log.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct AnalystQuality {
    /// Incident insights written.
    pub insights: usize,
    /// Insights that came from a model answer (whatever its form).
    pub model_answers: usize,
    /// Answered through the forced tool call and valid.
    pub schema_valid: usize,
    /// Read from text instead (the model did not call the tool) and valid.
    pub text_fallbacks: usize,
    /// Answers that failed validation (the rules answered).
    pub invalid: usize,
    /// Model insights below the confidence floor.
    pub low_confidence: usize,
    /// Asked of the model but answered by the rules for another reason (throttled, timeout, …).
    pub call_fallbacks: usize,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// Distinct incidents that got an insight.
    pub incidents: usize,
}

impl AnalystQuality {
    fn add(&mut self, i: &crate::events::types::InsightGeneratedV2) {
        use crate::analyst::insight::InsightSource;
        self.insights += 1;
        self.input_tokens += u64::from(i.input_tokens);
        self.output_tokens += u64::from(i.output_tokens);
        self.cost_usd += i.cost_usd;
        self.low_confidence += usize::from(i.low_confidence);
        match (i.source, i.answer_form.as_deref()) {
            (InsightSource::Ai, Some(form)) => {
                self.model_answers += 1;
                match form {
                    "tool" => self.schema_valid += 1,
                    _ => self.text_fallbacks += 1,
                }
            }
            (InsightSource::Fallback, Some(_)) => {
                self.model_answers += 1;
                self.invalid += 1;
            }
            (InsightSource::Fallback, None) if i.model_id.is_some() => self.call_fallbacks += 1,
            _ => {}
        }
    }

    /// The figures as text, after the detection table.
    pub fn summary(&self) -> String {
        let per = |v: f64| v / self.incidents.max(1) as f64;
        format!(
            "model answers: {} for {} incidents; schema-valid {} ({:.1}%), text fallbacks {}, invalid {}, low-confidence {}, call failures {}
             per incident: {:.0} input + {:.0} output tokens, ${:.6}
",
            self.model_answers,
            self.incidents,
            self.schema_valid,
            self.schema_valid as f64 * 100.0 / self.model_answers.max(1) as f64,
            self.text_fallbacks,
            self.invalid,
            self.low_confidence,
            self.call_fallbacks,
            per(self.input_tokens as f64),
            per(self.output_tokens as f64),
            per(self.cost_usd),
        )
    }
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
    let (observed, incidents) = observe(&node)?;
    let quality = analyst_quality(&node)?;
    node.shutdown().await;
    let run = score::Run {
        streams,
        duration_ms,
        interval_ms,
    };
    Ok(Evaluation {
        report: score::score(&labels, &observed, &incidents, &run),
        labels,
        observed,
        incidents,
        quality,
    })
}

/// The model's answers to the run's incidents, from the insights in `#incidents`.
pub fn analyst_quality(node: &Node) -> anyhow::Result<AnalystQuality> {
    let store = node.writer.store();
    let mut q = AnalystQuality::default();
    let mut answered = std::collections::HashSet::new();
    let mut seq = 1;
    loop {
        let page = store.read_stream(INCIDENT_STREAM, seq, 1000)?;
        let Some(last) = page.last() else { break };
        seq = last.record.seq + 1;
        for e in &page {
            let r = &e.record;
            if r.event_type != "InsightGenerated" {
                continue;
            }
            if let StreamEvent::InsightGenerated(i) = r.decode_event()? {
                q.add(&i);
                answered.insert(i.anomaly_id.clone());
            }
        }
    }
    q.incidents = answered.len();
    Ok(q)
}

/// Wait until every incident has its insight and the projections have seen them all.
pub async fn settle(node: &Node) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut quiet = 0;
    while quiet < 3 {
        anyhow::ensure!(Instant::now() < deadline, "the node did not settle");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let idle =
            node.analyst.queue_depth() == 0 && node.incidents_waiting.load(Ordering::Relaxed) == 0;
        let caught_up = node
            .projections
            .iter()
            .all(|(_, lag)| lag.events_behind.load(Ordering::Relaxed) == 0);
        quiet = if idle && caught_up { quiet + 1 } else { 0 };
    }
    Ok(())
}

/// What the log says about one incident, after following merges.
#[derive(Debug, Default)]
struct Seen {
    scope: Option<IncidentScope>,
    merged_into: Option<String>,
    insight: Option<(PredictionType, u8)>,
    alerted: bool,
}

/// Every anomaly in the log, with its final incident's insight and whether that raised an
/// alert; and every analysed incident with its member anomalies.
pub fn observe(node: &Node) -> anyhow::Result<(Vec<Observed>, Vec<IncidentObserved>)> {
    let store = node.writer.store();
    let mut anomalies: Vec<((String, u64), i64)> = Vec::new();
    let mut incident_of: HashMap<(String, u64), String> = HashMap::new();
    let mut incidents: HashMap<String, Seen> = HashMap::new();
    let mut from = 1;
    loop {
        let page = store.read_from(from, 1000)?;
        let Some(last) = page.last() else { break };
        from = last.offset + 1;
        for e in &page {
            let r = &e.record;
            if r.event_type == "MetricObserved" || r.event_type == "AnomalyResolved" {
                continue;
            }
            match r.decode_event()? {
                StreamEvent::AnomalyDetected(a) => {
                    anomalies.push(((r.stream_id.clone(), r.seq), a.window_end_ms))
                }
                StreamEvent::InsightGenerated(i) if r.stream_id == INCIDENT_STREAM => {
                    let seen = incidents.entry(i.anomaly_id.clone()).or_default();
                    // The operator sees the riskiest answer.
                    if seen.insight.is_none_or(|(_, risk)| i.risk_score >= risk) {
                        seen.insight = Some((i.prediction_type, i.risk_score));
                    }
                }
                StreamEvent::AlertRaised(a) if r.stream_id == ALERT_STREAM => {
                    if let Some(id) = a.incident_id {
                        incidents.entry(id).or_default().alerted = true;
                    }
                }
                event => {
                    if let Some(inc) = event.incident() {
                        for m in &inc.members {
                            for a in &m.anomalies {
                                incident_of.insert(
                                    (m.stream_id.clone(), a.anomaly_seq),
                                    inc.incident_id.clone(),
                                );
                            }
                        }
                        let seen = incidents.entry(inc.incident_id.clone()).or_default();
                        seen.scope = Some(inc.scope);
                        seen.merged_into = inc.merged_into.clone();
                    }
                }
            }
        }
    }
    let last = |mut id: String| {
        for _ in 0..16 {
            match incidents.get(&id).and_then(|s| s.merged_into.clone()) {
                Some(next) => id = next,
                None => break,
            }
        }
        id
    };
    let mut members: HashMap<String, Vec<(String, i64)>> = HashMap::new();
    let observed = anomalies
        .into_iter()
        .map(|(key, at_ms)| {
            let id = incident_of.get(&key).cloned().map(&last);
            let seen = id.as_ref().and_then(|id| incidents.get(id));
            if let Some(id) = &id {
                members
                    .entry(id.clone())
                    .or_default()
                    .push((key.0.clone(), at_ms));
            }
            Observed {
                stream_id: key.0,
                at_ms,
                prediction: seen.and_then(|s| s.insight.map(|i| i.0)),
                risk: seen.and_then(|s| s.insight.map(|i| i.1)).unwrap_or(0),
                alerted: seen.is_some_and(|s| s.alerted),
                incident: id.clone(),
                scope: seen.and_then(|s| s.scope),
            }
        })
        .collect();
    let analysed = members
        .into_iter()
        .filter_map(|(id, anomalies)| {
            let seen = incidents.get(&id)?;
            let (prediction, risk) = seen.insight?;
            Some(IncidentObserved {
                incident_id: id,
                anomalies,
                prediction,
                risk,
                alerted: seen.alerted,
            })
        })
        .collect();
    Ok((observed, analysed))
}
