//! The periodic digest.

use super::*;

/// Incidents of one kind in a digest: by the prediction type of their latest insight (`None`:
/// not analysed by the end of the period) and scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestCountV1 {
    pub prediction_type: Option<PredictionType>,
    pub scope: IncidentScope,
    pub count: u32,
}

/// A port that stood out in a digest's period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigestPortV1 {
    pub stream_id: String,
    /// Incidents it was a member of.
    pub incidents: u32,
    /// Member anomalies it brought to them.
    pub anomalies: u32,
    /// The highest risk of those incidents' insights (the risk acted on).
    pub worst_risk: u8,
}

/// The summary of one period (an hour by default, `alerts.digest_period_s`): what opened and
/// resolved, what paged and what was held back, the ports that stood out, and what the model
/// cost. Written to `#digest` once its period is over, and sent to EventBridge as
/// `Insight Digest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InsightDigestV1 {
    pub period_start_ms: i64,
    pub period_end_ms: i64,
    pub opened: Vec<DigestCountV1>,
    pub resolved: Vec<DigestCountV1>,
    pub alerts_raised: u32,
    pub alerts_suppressed: u32,
    pub top_ports: Vec<DigestPortV1>,
    /// Model calls (a batch is one call), and the insights by source.
    pub model_calls: u32,
    pub ai_insights: u32,
    pub rules_insights: u32,
    pub fallback_insights: u32,
    pub low_confidence: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: f64,
    /// The last seq of `#incidents` and of `#alerts` the digest read: the next one starts
    /// after them.
    pub incidents_seq: u64,
    pub alerts_seq: u64,
}
