//! Insight cache: the same (stream, prediction class, severity) within a window reuses the
//! last insight instead of asking the model again. A fault storm repeats the same anomaly on
//! the same port many times; one answer serves them all.

use super::insight::{Insight, PredictionType};
use crate::detect::rules::Severity;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub stream_id: String,
    pub class: PredictionType,
    pub severity: Severity,
}

#[derive(Debug)]
pub struct InsightCache {
    window_ms: i64,
    max_entries: usize,
    entries: HashMap<CacheKey, (Insight, i64)>,
}

impl InsightCache {
    pub fn new(window_ms: i64, max_entries: usize) -> InsightCache {
        InsightCache {
            window_ms,
            max_entries: max_entries.max(1),
            entries: HashMap::new(),
        }
    }

    pub fn get(&self, key: &CacheKey, now_ms: i64) -> Option<&Insight> {
        if self.window_ms <= 0 {
            return None;
        }
        self.entries
            .get(key)
            .filter(|(_, at)| now_ms - at < self.window_ms)
            .map(|(i, _)| i)
    }

    pub fn put(&mut self, key: CacheKey, insight: Insight, now_ms: i64) {
        if self.window_ms <= 0 {
            return;
        }
        if self.entries.len() >= self.max_entries {
            let window = self.window_ms;
            self.entries.retain(|_, (_, at)| now_ms - *at < window);
            if self.entries.len() >= self.max_entries {
                // Still full of live entries: drop the oldest.
                if let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone())
                {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.entries.insert(key, (insight, now_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(stream: &str) -> CacheKey {
        CacheKey {
            stream_id: stream.into(),
            class: PredictionType::LatencySpike,
            severity: Severity::Major,
        }
    }

    fn insight() -> Insight {
        Insight {
            prediction_type: PredictionType::LatencySpike,
            risk_score: 60,
            explanation: "x".into(),
            recommendations: vec!["a".into(), "b".into()],
            confidence: 0.8,
            notes: vec![],
        }
    }

    #[test]
    fn hits_within_the_window_only() {
        let mut c = InsightCache::new(60_000, 100);
        c.put(key("a"), insight(), 0);
        assert!(c.get(&key("a"), 59_999).is_some());
        assert!(c.get(&key("a"), 60_000).is_none());
        assert!(c.get(&key("b"), 1).is_none());
        let other_severity = CacheKey {
            severity: Severity::Critical,
            ..key("a")
        };
        assert!(c.get(&other_severity, 1).is_none());
    }

    #[test]
    fn stays_bounded() {
        let mut c = InsightCache::new(60_000, 2);
        c.put(key("a"), insight(), 0);
        c.put(key("b"), insight(), 1);
        c.put(key("c"), insight(), 2);
        assert!(c.get(&key("a"), 3).is_none(), "the oldest was dropped");
        assert!(c.get(&key("c"), 3).is_some());
    }

    #[test]
    fn a_zero_window_disables_it() {
        let mut c = InsightCache::new(0, 10);
        c.put(key("a"), insight(), 0);
        assert!(c.get(&key("a"), 0).is_none());
    }
}
