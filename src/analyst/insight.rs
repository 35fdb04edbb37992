//! The insight contract: what an analyst (the model or the rules) says about an anomaly.

use serde::{Deserialize, Serialize};

pub use crate::vocab::{InsightSource, PredictionType};

/// A validated insight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Insight {
    pub prediction_type: PredictionType,
    /// 0 to 100; 80 and above is critical.
    pub risk_score: u8,
    pub explanation: String,
    /// 2 to 4 actionable steps.
    pub recommendations: Vec<String>,
    /// 0 to 1.
    pub confidence: f64,
    /// What validation changed (clamped values, unknown types), empty when nothing.
    pub notes: Vec<String>,
}

/// Risk at or above this is critical (alerts go to EventBridge).
pub const CRITICAL_RISK: u8 = 80;
