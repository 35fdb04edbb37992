//! Token cost and the daily budget. Prices are per million tokens (config); the budget
//! resets at midnight UTC. Once a day's spend reaches the budget, the pool answers with the
//! fallback until the next UTC day.

pub const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
}

impl Pricing {
    pub fn cost_usd(&self, input_tokens: u32, output_tokens: u32) -> f64 {
        (f64::from(input_tokens) * self.input_usd_per_mtok
            + f64::from(output_tokens) * self.output_usd_per_mtok)
            / 1_000_000.0
    }
}

#[derive(Debug, Clone)]
pub struct DailyBudget {
    limit_usd: f64,
    day: i64,
    spent_usd: f64,
}

impl DailyBudget {
    pub fn new(limit_usd: f64) -> DailyBudget {
        DailyBudget {
            limit_usd,
            day: i64::MIN,
            spent_usd: 0.0,
        }
    }

    fn roll(&mut self, now_ms: i64) {
        let day = now_ms.div_euclid(DAY_MS);
        if day != self.day {
            self.day = day;
            self.spent_usd = 0.0;
        }
    }

    /// Whether today's spend is still under the limit.
    pub fn allows(&mut self, now_ms: i64) -> bool {
        self.roll(now_ms);
        self.spent_usd < self.limit_usd
    }

    pub fn record(&mut self, cost_usd: f64, now_ms: i64) {
        self.roll(now_ms);
        self.spent_usd += cost_usd;
    }

    /// Count at least `spent_usd` as spent today (what the log says was spent, after a restart
    /// or when this node takes over the analyst in a cluster).
    pub fn at_least(&mut self, spent_usd: f64, now_ms: i64) {
        self.roll(now_ms);
        self.spent_usd = self.spent_usd.max(spent_usd);
    }

    pub fn spent_today(&mut self, now_ms: i64) -> f64 {
        self.roll(now_ms);
        self.spent_usd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haiku_prices() {
        let p = Pricing {
            input_usd_per_mtok: 0.8,
            output_usd_per_mtok: 4.0,
        };
        let c = p.cost_usd(1_000_000, 250_000);
        assert!((c - 1.8).abs() < 1e-9, "{c}");
    }

    #[test]
    fn given_the_logs_spend_when_a_node_takes_over_then_it_counts_it_today_only() {
        let mut b = DailyBudget::new(1.0);
        b.at_least(0.99, 10 * DAY_MS + 5);
        b.record(0.02, 10 * DAY_MS + 6);
        assert!(
            !b.allows(10 * DAY_MS + 7),
            "what the other node spent counts"
        );
        b.at_least(0.5, 10 * DAY_MS + 8);
        assert!(
            (b.spent_today(10 * DAY_MS + 9) - 1.01).abs() < 1e-9,
            "never lowers"
        );
        assert!(b.allows(11 * DAY_MS), "a new day starts at zero");
    }

    #[test]
    fn the_budget_closes_at_the_limit_and_reopens_the_next_utc_day() {
        let mut b = DailyBudget::new(1.0);
        let t = 10 * DAY_MS + 1000;
        assert!(b.allows(t));
        b.record(0.6, t);
        assert!(b.allows(t));
        b.record(0.5, t);
        assert!(!b.allows(t + 1000));
        assert!(!b.allows(11 * DAY_MS - 1));
        assert!(b.allows(11 * DAY_MS), "a new UTC day");
        assert_eq!(b.spent_today(11 * DAY_MS), 0.0);
    }
}
