//! Circuit breaker: after `threshold` consecutive model failures everything goes to the
//! fallback for `cool_off_ms`; then one probe call is let through. Its success closes the
//! breaker, its failure opens it again.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed {
        failures: u32,
    },
    Open {
        until_ms: i64,
    },
    /// Cool-off over: one probe at a time, the current one let through at `probe_since_ms`.
    /// A probe that never reports back (its worker was stopped) is given up after the probe
    /// timeout and the next call probes instead, so the breaker cannot stay half-open for ever.
    HalfOpen {
        probe_since_ms: Option<i64>,
    },
}

#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    pub state: BreakerState,
    threshold: u32,
    cool_off_ms: i64,
    probe_timeout_ms: i64,
}

impl CircuitBreaker {
    /// `probe_timeout_ms`: the longest a probe call can take (its deadline).
    pub fn new(threshold: u32, cool_off_ms: i64, probe_timeout_ms: i64) -> CircuitBreaker {
        CircuitBreaker {
            state: BreakerState::Closed { failures: 0 },
            threshold: threshold.max(1),
            cool_off_ms,
            probe_timeout_ms: probe_timeout_ms.max(1),
        }
    }

    /// May a call go to the model now? (A `true` in the half-open state makes it the probe.)
    pub fn allow(&mut self, now_ms: i64) -> bool {
        let probe = match self.state {
            BreakerState::Closed { .. } => return true,
            BreakerState::Open { until_ms } => now_ms >= until_ms,
            BreakerState::HalfOpen {
                probe_since_ms: None,
            } => true,
            BreakerState::HalfOpen {
                probe_since_ms: Some(since),
            } => now_ms - since >= self.probe_timeout_ms,
        };
        if probe {
            self.state = BreakerState::HalfOpen {
                probe_since_ms: Some(now_ms),
            };
        }
        probe
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

    /// A call that `allow` let through was not made after all (it gave up before calling):
    /// if it was the probe, the next call probes.
    pub fn on_abandoned(&mut self) {
        if let BreakerState::HalfOpen { .. } = self.state {
            self.state = BreakerState::HalfOpen {
                probe_since_ms: None,
            };
        }
    }

    /// Whether calls are held back (open, or half-open until a probe succeeds).
    pub fn is_open(&self) -> bool {
        !matches!(self.state, BreakerState::Closed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_then_probes_after_cool_off() {
        let mut b = CircuitBreaker::new(3, 10_000, 60_000);
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
        let mut b = CircuitBreaker::new(1, 1000, 60_000);
        b.on_failure(0);
        assert!(b.allow(1000));
        b.on_failure(1000);
        assert!(!b.allow(1500));
        assert!(b.allow(2000));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut b = CircuitBreaker::new(2, 1000, 60_000);
        b.on_failure(0);
        b.on_success();
        b.on_failure(0);
        assert!(!b.is_open());
    }

    #[test]
    fn a_probe_that_never_reports_back_is_given_up_after_its_timeout() {
        // Given an open breaker whose probe was let through and then lost (worker killed),
        let mut b = CircuitBreaker::new(1, 1000, 30_000);
        b.on_failure(0);
        assert!(b.allow(1000), "the probe");
        // when later calls arrive, they are held back while the probe may still answer,
        assert!(!b.allow(20_000));
        assert!(b.is_open(), "half-open holds calls back and says so");
        // then once the probe is past its timeout, the next call probes instead.
        assert!(b.allow(31_000));
        b.on_success();
        assert!(!b.is_open());
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_call_probe() {
        let mut b = CircuitBreaker::new(1, 1000, 30_000);
        b.on_failure(0);
        assert!(b.allow(1000));
        b.on_abandoned();
        assert!(b.allow(1001));
    }
}
