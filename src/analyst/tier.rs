//! Which prompt an incident gets (the plan's tiered analysis): the full prompt with its
//! examples for a critical incident, the standard prompt for a high one, a minimal one for
//! the rest, each with its evidence budget. The tier follows the rules backend's risk for
//! the incident, known before the model is asked.

use super::TierBudgets;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    Medium,
    High,
    Critical,
}

impl Tier {
    /// By the rules' risk: 80 and above critical, 60 to 79 high, below medium.
    pub fn for_risk(rules_risk: u8) -> Tier {
        match rules_risk {
            80.. => Tier::Critical,
            60..=79 => Tier::High,
            _ => Tier::Medium,
        }
    }

    /// The tier of a batch: its most severe job's, so no incident is asked with less than
    /// its own prompt. Untiered, every batch is asked with the full prompt.
    pub fn for_batch(rules_risks: impl IntoIterator<Item = u8>, tiered: bool) -> Tier {
        if !tiered {
            return Tier::Critical;
        }
        rules_risks
            .into_iter()
            .map(Tier::for_risk)
            .max()
            .unwrap_or(Tier::Critical)
    }

    pub fn name(self) -> &'static str {
        match self {
            Tier::Critical => "critical",
            Tier::High => "high",
            Tier::Medium => "medium",
        }
    }

    /// The evidence budget of the user message, in tokens.
    pub fn budget_tokens(self, budgets: &TierBudgets) -> u32 {
        match self {
            Tier::Critical => budgets.critical_tokens,
            Tier::High => budgets.high_tokens,
            Tier::Medium => budgets.medium_tokens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_the_rules_risk_when_tiered_then_the_plan_s_thresholds_pick_the_prompt() {
        assert_eq!(Tier::for_risk(95), Tier::Critical);
        assert_eq!(Tier::for_risk(80), Tier::Critical);
        assert_eq!(Tier::for_risk(79), Tier::High);
        assert_eq!(Tier::for_risk(60), Tier::High);
        assert_eq!(Tier::for_risk(59), Tier::Medium);
        assert_eq!(Tier::for_risk(0), Tier::Medium);
    }

    #[test]
    fn given_a_mixed_batch_when_tiered_then_its_most_severe_job_decides() {
        assert_eq!(Tier::for_batch([40, 65, 50], true), Tier::High);
        assert_eq!(Tier::for_batch([40, 90], true), Tier::Critical);
        assert_eq!(Tier::for_batch([40, 45], true), Tier::Medium);
    }

    #[test]
    fn given_tiering_off_then_every_batch_gets_the_full_prompt() {
        assert_eq!(Tier::for_batch([40], false), Tier::Critical);
        let b = TierBudgets::default();
        assert!(Tier::Critical.budget_tokens(&b) > Tier::High.budget_tokens(&b));
        assert!(Tier::High.budget_tokens(&b) > Tier::Medium.budget_tokens(&b));
    }
}
