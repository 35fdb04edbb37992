//! Token buckets for Bedrock's quotas: requests per minute and tokens per minute. The limiter
//! never drops work: it says how long to wait, and the worker waits.

/// A bucket refilled continuously at `per_minute`, holding at most one minute's worth.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    tokens: f64,
    per_ms: f64,
    last_ms: i64,
}

impl TokenBucket {
    pub fn per_minute(per_minute: u32, now_ms: i64) -> TokenBucket {
        let capacity = f64::from(per_minute.max(1));
        TokenBucket {
            capacity,
            tokens: capacity,
            per_ms: capacity / 60_000.0,
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: i64) {
        let elapsed = (now_ms - self.last_ms).max(0) as f64;
        self.tokens = (self.tokens + elapsed * self.per_ms).min(self.capacity);
        self.last_ms = now_ms.max(self.last_ms);
    }

    /// Milliseconds until `n` tokens are available (0: available now).
    pub fn wait_ms(&mut self, n: f64, now_ms: i64) -> i64 {
        self.refill(now_ms);
        let n = n.min(self.capacity);
        if self.tokens >= n {
            0
        } else {
            ((n - self.tokens) / self.per_ms).ceil() as i64
        }
    }

    /// Take `n` tokens (the balance may go negative: a later call then waits longer).
    pub fn take(&mut self, n: f64, now_ms: i64) {
        self.refill(now_ms);
        self.tokens -= n;
    }
}

/// Requests and tokens per minute together.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    requests: TokenBucket,
    tokens: TokenBucket,
}

impl RateLimiter {
    pub fn new(max_rpm: u32, max_tpm: u32, now_ms: i64) -> RateLimiter {
        RateLimiter {
            requests: TokenBucket::per_minute(max_rpm, now_ms),
            tokens: TokenBucket::per_minute(max_tpm, now_ms),
        }
    }

    /// Reserve one request and `est_tokens`; returns 0 when reserved, else ms to wait first.
    pub fn reserve(&mut self, est_tokens: u32, now_ms: i64) -> i64 {
        let wait = self
            .requests
            .wait_ms(1.0, now_ms)
            .max(self.tokens.wait_ms(f64::from(est_tokens), now_ms));
        if wait == 0 {
            self.requests.take(1.0, now_ms);
            self.tokens.take(f64::from(est_tokens), now_ms);
        }
        wait
    }

    /// Correct the token reservation once the real usage is known.
    pub fn settle(&mut self, est_tokens: u32, actual_tokens: u32, now_ms: i64) {
        self.tokens
            .take(f64::from(actual_tokens) - f64::from(est_tokens), now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_per_minute_are_spread_not_dropped() {
        let mut l = RateLimiter::new(60, 1_000_000, 0);
        for _ in 0..60 {
            assert_eq!(l.reserve(10, 0), 0);
        }
        // The 61st waits one second's refill (60/min = 1/s).
        let wait = l.reserve(10, 0);
        assert_eq!(wait, 1000);
        assert_eq!(l.reserve(10, 1000), 0);
    }

    #[test]
    fn tokens_per_minute_delay_large_prompts() {
        let mut l = RateLimiter::new(1000, 6000, 0);
        assert_eq!(l.reserve(6000, 0), 0);
        let wait = l.reserve(3000, 0);
        assert_eq!(wait, 30_000, "half a minute to refill 3000 of 6000/min");
    }

    #[test]
    fn settling_charges_the_real_usage() {
        let mut l = RateLimiter::new(1000, 6000, 0);
        assert_eq!(l.reserve(1000, 0), 0);
        l.settle(1000, 6000, 0);
        assert!(l.reserve(1000, 0) > 0, "the overrun must be paid back");
    }
}
