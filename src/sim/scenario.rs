//! Scenarios: a run (fabric size, interval, duration, seed) and the faults injected into it,
//! as TOML. The bundled ones (`config/scenarios/*.toml`) are compiled in, so `--scenario mixed`
//! works from any directory; a path loads a file.

use super::fabric::Fabric;
use super::faults::FaultKind;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    pub kind: FaultKind,
    /// A stream id (`leaf01/p19`) or a device (`leaf03`: all its ports).
    pub target: String,
    pub start_s: u64,
    pub duration_s: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default = "default_nodes")]
    pub nodes: usize,
    #[serde(default = "default_interval")]
    pub interval_s: u64,
    pub duration_s: u64,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
}

fn default_nodes() -> usize {
    64
}

fn default_interval() -> u64 {
    1
}

pub const BUNDLED: &[(&str, &str)] = &[
    ("mixed", include_str!("../../config/scenarios/mixed.toml")),
    (
        "switch-storm",
        include_str!("../../config/scenarios/switch-storm.toml"),
    ),
    (
        "healthy",
        include_str!("../../config/scenarios/healthy.toml"),
    ),
    (
        "long-noisy",
        include_str!("../../config/scenarios/long-noisy.toml"),
    ),
];

#[derive(Debug, thiserror::Error)]
#[error("scenario {source_name}: {reason}")]
pub struct ScenarioError {
    pub source_name: String,
    pub reason: String,
}

impl Scenario {
    /// A bundled scenario by name, or a TOML file by path.
    pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        let err = |reason: String| ScenarioError {
            source_name: name_or_path.to_string(),
            reason,
        };
        let text = match BUNDLED.iter().find(|(n, _)| *n == name_or_path) {
            Some((_, text)) => text.to_string(),
            None => std::fs::read_to_string(name_or_path).map_err(|e| {
                let names: Vec<&str> = BUNDLED.iter().map(|(n, _)| *n).collect();
                err(format!(
                    "not a bundled scenario ({}) nor a readable file: {e}",
                    names.join(", ")
                ))
            })?,
        };
        let scenario: Scenario = toml_parse(&text).map_err(err)?;
        scenario.validate().map_err(err)?;
        Ok(scenario)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.interval_s == 0 || self.duration_s < self.interval_s {
            return Err(format!(
                "interval_s {} and duration_s {} must be positive, duration at least one interval",
                self.interval_s, self.duration_s
            ));
        }
        let fabric = Fabric::new(self.nodes);
        for (i, f) in self.faults.iter().enumerate() {
            if fabric.resolve(&f.target).is_empty() {
                return Err(format!(
                    "faults[{i}].target: no stream or device {:?} in a {}-node fabric",
                    f.target, self.nodes
                ));
            }
            if f.duration_s == 0 || f.start_s + f.duration_s > self.duration_s {
                return Err(format!(
                    "faults[{i}]: start_s {} + duration_s {} must end within duration_s {}",
                    f.start_s, f.duration_s, self.duration_s
                ));
            }
        }
        Ok(())
    }
}

fn toml_parse(text: &str) -> Result<Scenario, String> {
    use figment::providers::{Format, Toml};
    figment::Figment::from(Toml::string(text))
        .extract()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_scenarios_load() {
        for (name, _) in BUNDLED {
            let s = Scenario::load(name).expect("bundled scenario");
            assert_eq!(&s.name, name);
        }
    }

    #[test]
    fn bad_targets_and_windows_are_named() {
        let mut s = Scenario::load("mixed").expect("mixed");
        s.faults[0].target = "leaf99/p01".into();
        let e = s.validate().expect_err("bad target");
        assert!(
            e.contains("faults[0].target") && e.contains("leaf99/p01"),
            "{e}"
        );
        let mut s = Scenario::load("mixed").expect("mixed");
        s.faults[0].start_s = s.duration_s;
        assert!(s.validate().expect_err("late").contains("faults[0]"));
        assert!(Scenario::load("no-such-scenario").is_err());
    }
}
