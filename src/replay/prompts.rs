//! Prompt replay: every recorded ask asked again with a candidate prompt template, side by side
//! with the insight the log holds. An incident's job is rebuilt from the incident event that
//! asked (its members' evidence as of then); a log written before incidents asked per anomaly,
//! and those jobs are rebuilt the way the stream actor built them (the anomaly's evidence plus
//! the stream's readings and baselines at the time), by re-running each stream's samples. Reads a store and returns rows; writes
//! nothing (the command runs it on a private copy of the data directory).

use crate::actors::stream::state::{self, StreamState};
use crate::alerts::ALERT_STREAM;
use crate::analyst::insight::{InsightSource, PredictionType};
use crate::analyst::job::AnomalyJob;
use crate::analyst::service::{Analyst, InsightOutcome};
use crate::detect::DetectConfig;
use crate::events::types::InsightGeneratedV2;
use crate::events::{EventStore, Origin, StoreError, StreamEvent};
use crate::incidents::correlator::job_for;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::Ordering;

/// A recorded anomaly, ready to be asked again, with the insight recorded for it (if any).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub job: AnomalyJob,
    pub old: Option<InsightGeneratedV2>,
}

/// The recorded anomalies in log order (the first `limit` of them), with their insights.
pub fn recorded_anomalies(
    store: &dyn EventStore,
    detect: &DetectConfig,
    limit: Option<usize>,
) -> Result<Vec<Recorded>, StoreError> {
    let limit = limit.unwrap_or(usize::MAX);
    let mut streams: HashMap<String, StreamState> = HashMap::new();
    let mut out: Vec<Recorded> = Vec::new();
    let mut index: HashMap<(String, u64), usize> = HashMap::new();
    // Asks (incident events, or anomalies of logs from before incidents) not answered yet.
    let mut asks: HashMap<(String, u64), AnomalyJob> = HashMap::new();
    let mut answered = 0;
    let mut from = 1;
    let last = store.last_offset();
    while from <= last {
        let page = store.read_from(from, 1000)?;
        let Some(end) = page.last().map(|e| e.offset) else {
            break;
        };
        from = end + 1;
        for e in page {
            let r = &e.record;
            if r.stream_id == ALERT_STREAM {
                continue;
            }
            let Ok(event) = r.decode_event() else {
                continue;
            };
            let origin = Origin {
                correlation_id: r.correlation_id.clone(),
                trace: r.trace,
            };
            // An incident asked the analyst: its job is rebuilt from the incident as it was.
            // (An incident absorbed into a switch incident before its answer was never asked.)
            if let Some(inc) = event.incident() {
                if inc.analyse {
                    asks.insert((r.stream_id.clone(), r.seq), job_for(inc, r.seq, origin));
                }
                continue;
            }
            let st = streams
                .entry(r.stream_id.clone())
                .or_insert_with(|| StreamState::new(&r.stream_id));
            match event {
                // Re-running the samples re-derives the anomalies (and applies them), so the
                // state at each recorded anomaly is the one its job was built from.
                StreamEvent::MetricObserved(m) => {
                    let _ = state::replay_sample(st, m.sample, detect);
                }
                // A log written before incidents asked per anomaly. Either kind of ask is a
                // replay item once its insight shows it was answered.
                StreamEvent::AnomalyDetected(a) => {
                    asks.insert(
                        (r.stream_id.clone(), r.seq),
                        state::job_for(st, r.seq, a, origin),
                    );
                }
                StreamEvent::AnomalyResolved(_) => {}
                StreamEvent::InsightGenerated(insight) => {
                    let key = (r.stream_id.clone(), insight.anomaly_seq);
                    if let Some(job) = asks.remove(&key).filter(|_| out.len() < limit) {
                        index.insert(key.clone(), out.len());
                        out.push(Recorded { job, old: None });
                    }
                    if let Some(&i) = index.get(&key) {
                        if out[i].old.is_none() {
                            answered += 1;
                        }
                        out[i].old = Some(insight.clone());
                    }
                    state::apply(st, &StreamEvent::InsightGenerated(insight), detect);
                }
                other => state::apply(st, &other, detect),
            }
        }
        if out.len() >= limit && answered == out.len() {
            break;
        }
    }
    Ok(out)
}

/// One side of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    pub prediction_type: PredictionType,
    pub risk_score: u8,
    pub confidence: f64,
    pub explanation: String,
    pub recommendations: Vec<String>,
    pub source: InsightSource,
    pub prompt_version: String,
}

/// One line of the report: an anomaly, its recorded insight and the candidate's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub stream_id: String,
    pub anomaly_seq: u64,
    pub anomaly_id: String,
    pub rule: &'static str,
    pub severity: &'static str,
    pub old: Option<Side>,
    pub new: Side,
}

fn old_side(i: &InsightGeneratedV2) -> Side {
    Side {
        prediction_type: i.prediction_type,
        risk_score: i.risk_score,
        confidence: i.confidence,
        explanation: i.explanation.clone(),
        recommendations: i.recommendations.clone(),
        source: i.source,
        prompt_version: i.prompt_version.clone(),
    }
}

fn new_side(o: &InsightOutcome) -> Side {
    Side {
        prediction_type: o.insight.prediction_type,
        risk_score: o.insight.risk_score,
        confidence: o.insight.confidence,
        explanation: o.insight.explanation.clone(),
        recommendations: o.insight.recommendations.clone(),
        source: o.source,
        prompt_version: o.prompt_version.clone(),
    }
}

/// Ask `analyst` (configured with the candidate template) about every recorded anomaly, in
/// batches of `batch` (as the live pool batches them). Returns one row per anomaly.
pub async fn ask_again(
    recorded: &[Recorded],
    analyst: &Analyst,
    batch: usize,
    mut progress: impl FnMut(usize),
) -> Vec<Row> {
    let mut rows = Vec::with_capacity(recorded.len());
    for chunk in recorded.chunks(batch.max(1)) {
        let jobs: Vec<AnomalyJob> = chunk.iter().map(|r| r.job.clone()).collect();
        let outcomes = analyst.analyse(&jobs).await;
        for (r, o) in chunk.iter().zip(&outcomes) {
            let a = &r.job.anomaly;
            rows.push(Row {
                stream_id: r.job.stream_id.clone(),
                anomaly_seq: r.job.anomaly_seq,
                anomaly_id: a.anomaly_id.clone(),
                rule: a.rule.name(),
                severity: a.severity.name(),
                old: r.old.as_ref().map(old_side),
                new: new_side(o),
            });
        }
        progress(rows.len());
    }
    rows
}

/// The figures a prompt engineer decides on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub anomalies: usize,
    /// Anomalies that had a recorded insight to compare with.
    pub compared: usize,
    pub type_agreement_pct: f64,
    pub mean_abs_delta_risk: f64,
    /// Rows whose risk tier (critical ≥ 80, high ≥ 60, medium ≥ 40, low) changed.
    pub tier_changes: usize,
    pub new_fallbacks: usize,
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    pub new_prompt_version: String,
    pub old_prompt_versions: Vec<String>,
}

fn tier(risk: u8) -> u8 {
    match risk {
        80.. => 3,
        60..=79 => 2,
        40..=59 => 1,
        _ => 0,
    }
}

/// Agreement and deltas over the rows; the call figures come from the analyst's counters.
pub fn summarize(rows: &[Row], analyst: &Analyst) -> Summary {
    let pairs: Vec<(&Side, &Side)> = rows
        .iter()
        .filter_map(|r| r.old.as_ref().map(|o| (o, &r.new)))
        .collect();
    let n = pairs.len();
    let pct = |k: usize| {
        if n == 0 {
            0.0
        } else {
            (k as f64 * 1000.0 / n as f64).round() / 10.0
        }
    };
    let agree = pairs
        .iter()
        .filter(|(o, w)| o.prediction_type == w.prediction_type)
        .count();
    let delta: f64 = pairs
        .iter()
        .map(|(o, w)| (f64::from(o.risk_score) - f64::from(w.risk_score)).abs())
        .sum();
    let mut old_versions: Vec<String> = pairs
        .iter()
        .map(|(o, _)| o.prompt_version.clone())
        .collect();
    old_versions.sort();
    old_versions.dedup();
    let c = &analyst.counters;
    Summary {
        anomalies: rows.len(),
        compared: n,
        type_agreement_pct: pct(agree),
        mean_abs_delta_risk: if n == 0 {
            0.0
        } else {
            (delta / n as f64 * 100.0).round() / 100.0
        },
        tier_changes: pairs
            .iter()
            .filter(|(o, w)| tier(o.risk_score) != tier(w.risk_score))
            .count(),
        new_fallbacks: rows
            .iter()
            .filter(|r| r.new.source == InsightSource::Fallback)
            .count(),
        calls: c.calls.load(Ordering::Relaxed),
        input_tokens: c.input_tokens.load(Ordering::Relaxed),
        output_tokens: c.output_tokens.load(Ordering::Relaxed),
        cost_usd: c.cost_micro_usd.load(Ordering::Relaxed) as f64 / 1_000_000.0,
        new_prompt_version: analyst.template().version.clone(),
        old_prompt_versions: old_versions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyst::AnalystConfig;
    use std::time::Duration;

    fn side(t: PredictionType, risk: u8) -> Side {
        Side {
            prediction_type: t,
            risk_score: risk,
            confidence: 0.8,
            explanation: String::new(),
            recommendations: vec![],
            source: InsightSource::Ai,
            prompt_version: "v1".into(),
        }
    }

    fn row(old: Option<Side>, new: Side) -> Row {
        Row {
            stream_id: "s".into(),
            anomaly_seq: 2,
            anomaly_id: "a".into(),
            rule: "r",
            severity: "major",
            old,
            new,
        }
    }

    #[test]
    fn agreement_and_risk_deltas_count_only_compared_rows() {
        use PredictionType::*;
        let rows = vec![
            row(Some(side(LatencySpike, 60)), side(LatencySpike, 50)),
            row(Some(side(LatencySpike, 90)), side(ResourceSaturation, 80)),
            row(
                Some(side(ConnectionInstability, 85)),
                side(ConnectionInstability, 85),
            ),
            row(None, side(ConnectionInstability, 10)),
        ];
        let analyst = Analyst::new(AnalystConfig::default(), None, Duration::ZERO, 0);
        let s = summarize(&rows, &analyst);
        assert_eq!(s.anomalies, 4);
        assert_eq!(s.compared, 3);
        assert_eq!(s.type_agreement_pct, 66.7);
        assert_eq!(s.mean_abs_delta_risk, 6.67);
        assert_eq!(
            s.tier_changes, 1,
            "60 → 50 leaves high; 90 → 80 stays critical"
        );
        assert_eq!(s.old_prompt_versions, vec!["v1".to_string()]);
        assert_eq!(s.new_prompt_version, "ib-insight-v3");
    }

    #[test]
    fn tiers_follow_the_seed_thresholds() {
        assert_eq!(
            [
                tier(100),
                tier(80),
                tier(79),
                tier(60),
                tier(59),
                tier(40),
                tier(39),
                tier(0)
            ],
            [3, 3, 2, 2, 1, 1, 0, 0]
        );
    }
}
