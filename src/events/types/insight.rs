//! The analyst's answers: `InsightGenerated` v1 and v2.

use super::*;

/// The analyst's answer to one anomaly. An LLM answer is recorded, never recomputed: replay
/// reads it back as it was. The fields repeat `analyst::Insight` and its provenance on
/// purpose: a persisted struct is frozen, while the analyst's own types may evolve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InsightGeneratedV1 {
    /// Seq of the `AnomalyDetected` event this insight answers.
    pub anomaly_seq: u64,
    pub anomaly_id: String,
    pub prediction_type: PredictionType,
    pub risk_score: u8,
    pub explanation: String,
    pub recommendations: Vec<String>,
    pub confidence: f64,
    /// What validation changed in the model's answer.
    pub notes: Vec<String>,
    pub source: InsightSource,
    /// Why the rules answered, or why the model was not asked.
    pub reason: Option<String>,
    pub model_id: Option<String>,
    pub prompt_version: String,
    pub prompt_hash: Option<String>,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cost_usd: f64,
    pub latency_ms: u64,
    pub attempts: u32,
    pub batch_size: u32,
}

/// The analyst's answer to one anomaly or incident, with how the model's answer was read.
/// v2 (after v1): the low-confidence mark with the rules' risk that alerting then follows,
/// the prompt tier, and whether the answer came as the schema-forced tool call or as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InsightGeneratedV2 {
    /// Seq of the `AnomalyDetected` (or incident) event this insight answers.
    pub anomaly_seq: u64,
    pub anomaly_id: String,
    pub prediction_type: PredictionType,
    pub risk_score: u8,
    pub explanation: String,
    pub recommendations: Vec<String>,
    pub confidence: f64,
    /// What validation changed in the model's answer.
    pub notes: Vec<String>,
    pub source: InsightSource,
    /// Why the rules answered, or why the model was not asked.
    pub reason: Option<String>,
    pub model_id: Option<String>,
    pub prompt_version: String,
    pub prompt_hash: Option<String>,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cost_usd: f64,
    pub latency_ms: u64,
    pub attempts: u32,
    pub batch_size: u32,
    /// A model's answer below `analyst.min_confidence`: kept, but its risk alone never
    /// raises a critical alert.
    pub low_confidence: bool,
    /// The rules backend's risk for the same incident, recorded with a low-confidence answer:
    /// alerting follows it then.
    pub rules_risk: Option<u8>,
    /// `critical`, `high` or `medium`: the prompt the model was asked with.
    pub prompt_tier: Option<String>,
    /// `tool` (the schema-forced call) or `text` (the fallback parse), for a model answer.
    pub answer_form: Option<String>,
}

impl InsightGeneratedV2 {
    /// The risk an operator's tools act on (alerts, the fabric's colours): the rules' for a
    /// low-confidence model answer, the answer's own otherwise.
    pub fn acted_risk(&self) -> u8 {
        match (self.low_confidence, self.rules_risk) {
            (true, Some(rules)) => rules,
            _ => self.risk_score,
        }
    }
}

impl From<InsightGeneratedV1> for InsightGeneratedV2 {
    fn from(v: InsightGeneratedV1) -> InsightGeneratedV2 {
        InsightGeneratedV2 {
            anomaly_seq: v.anomaly_seq,
            anomaly_id: v.anomaly_id,
            prediction_type: v.prediction_type,
            risk_score: v.risk_score,
            explanation: v.explanation,
            recommendations: v.recommendations,
            confidence: v.confidence,
            notes: v.notes,
            source: v.source,
            reason: v.reason,
            model_id: v.model_id,
            prompt_version: v.prompt_version,
            prompt_hash: v.prompt_hash,
            input_tokens: v.input_tokens,
            output_tokens: v.output_tokens,
            cost_usd: v.cost_usd,
            latency_ms: v.latency_ms,
            attempts: v.attempts,
            batch_size: v.batch_size,
            low_confidence: false,
            rules_risk: None,
            prompt_tier: None,
            answer_form: None,
        }
    }
}
