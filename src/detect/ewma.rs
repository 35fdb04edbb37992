//! Exponentially weighted mean and variance, one per metric and stream.
//!
//! During warm-up the weight is 1/n, so the early baseline is the plain running mean rather
//! than being dominated by the first reading.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Ewma {
    pub mean: f64,
    pub var: f64,
    pub count: u64,
}

impl Ewma {
    /// Fold in one observation with smoothing factor `alpha`.
    pub fn update(&mut self, x: f64, alpha: f64) {
        self.count += 1;
        let weight = alpha.max(1.0 / self.count as f64);
        let diff = x - self.mean;
        let incr = weight * diff;
        self.mean += incr;
        self.var = (1.0 - weight) * (self.var + diff * incr);
    }

    /// Fold in one observation with exactly `alpha`, warm-up or not: the slow teaching of a
    /// value the rules doubt (past a threshold, or during a lasting shift), which the warm-up's
    /// 1/n weight would otherwise take at full strength.
    pub fn nudge(&mut self, x: f64, alpha: f64) {
        self.count += 1;
        let diff = x - self.mean;
        let incr = alpha * diff;
        self.mean += incr;
        self.var = (1.0 - alpha) * (self.var + diff * incr);
    }

    pub fn stddev(&self) -> f64 {
        self.var.max(0.0).sqrt()
    }

    /// Whether enough samples were seen for baseline-relative rules.
    pub fn is_warm(&self, warmup_samples: u64) -> bool {
        self.count >= warmup_samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_is_the_mean() {
        let mut e = Ewma::default();
        e.update(42.0, 0.1);
        assert_eq!(e.mean, 42.0);
        assert_eq!(e.var, 0.0);
        assert_eq!(e.count, 1);
    }

    #[test]
    fn warm_up_gives_the_plain_mean() {
        let mut e = Ewma::default();
        for x in [10.0, 20.0, 30.0] {
            e.update(x, 0.1);
        }
        assert!((e.mean - 20.0).abs() < 1e-9, "mean {}", e.mean);
        assert!(!e.is_warm(4));
        e.update(20.0, 0.1);
        assert!(e.is_warm(4));
    }

    #[test]
    fn converges_to_a_constant_with_zero_variance() {
        let mut e = Ewma::default();
        for _ in 0..500 {
            e.update(7.5, 0.1);
        }
        assert!((e.mean - 7.5).abs() < 1e-9);
        assert!(e.stddev() < 1e-6);
    }

    #[test]
    fn tracks_a_step_change_after_warm_up() {
        let mut e = Ewma::default();
        for _ in 0..100 {
            e.update(10.0, 0.1);
        }
        for _ in 0..60 {
            e.update(20.0, 0.1);
        }
        assert!(e.mean > 19.9 && e.mean <= 20.0, "mean {}", e.mean);
    }

    #[test]
    fn variance_of_alternating_values_is_positive() {
        let mut e = Ewma::default();
        for i in 0..200 {
            e.update(if i % 2 == 0 { 9.0 } else { 11.0 }, 0.1);
        }
        assert!((e.mean - 10.0).abs() < 0.2);
        assert!(
            e.stddev() > 0.5 && e.stddev() < 1.5,
            "stddev {}",
            e.stddev()
        );
    }
}
