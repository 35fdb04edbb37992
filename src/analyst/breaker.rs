//! Circuit breaker: after `threshold` consecutive model failures everything goes to the
//! fallback for `cool_off_ms`; then one probe call is let through. Its success closes the
//! breaker, its failure opens it again.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed { failures: u32 },
    Open { until_ms: i64 },
    HalfOpen { probing: bool },
}

#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    pub state: BreakerState,
    threshold: u32,
    cool_off_ms: i64,
}

impl CircuitBreaker {
    pub fn new(threshold: u32, cool_off_ms: i64) -> CircuitBreaker {
        CircuitBreaker {
            state: BreakerState::Closed { failures: 0 },
            threshold: threshold.max(1),
            cool_off_ms,
        }
    }

    /// May a call go to the model now?
    pub fn allow(&mut self, now_ms: i64) -> bool {
        match self.state {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { until_ms } if now_ms < until_ms => false,
            BreakerState::Open { .. } | BreakerState::HalfOpen { probing: false } => {
                self.state = BreakerState::HalfOpen { probing: true };
                true
            }
            BreakerState::HalfOpen { probing: true } => false,
        }
    }

    pub fn on_success(&mut self) {
        self.state = BreakerState::Closed { failures: 0 };
    }

    pub fn on_failure(&mut self, now_ms: i64) {
        self.state = match self.state {
            BreakerState::Closed { failures } if failures + 1 < self.threshold => {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            _ => BreakerState::Open {
                until_ms: now_ms + self.cool_off_ms,
            },
        };
    }

    pub fn is_open(&self) -> bool {
        matches!(self.state, BreakerState::Open { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_then_probes_after_cool_off() {
        let mut b = CircuitBreaker::new(3, 10_000);
        for _ in 0..2 {
            assert!(b.allow(0));
            b.on_failure(0);
        }
        assert!(b.allow(0), "still closed after 2 of 3 failures");
        b.on_failure(0);
        assert!(!b.allow(5_000), "open during cool-off");
        assert!(b.allow(10_000), "one probe after cool-off");
        assert!(!b.allow(10_001), "only one probe at a time");
        b.on_success();
        assert!(b.allow(10_002));
        assert_eq!(b.state, BreakerState::Closed { failures: 0 });
    }

    #[test]
    fn a_failed_probe_reopens() {
        let mut b = CircuitBreaker::new(1, 1000);
        b.on_failure(0);
        assert!(b.allow(1000));
        b.on_failure(1000);
        assert!(!b.allow(1500));
        assert!(b.allow(2000));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut b = CircuitBreaker::new(2, 1000);
        b.on_failure(0);
        b.on_success();
        b.on_failure(0);
        assert!(!b.is_open());
    }
}
