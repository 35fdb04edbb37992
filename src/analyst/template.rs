//! Prompt templates: the static system text of every model call, in a file with a version id.
//! A template has the full (critical) system text, and may have a standard one (`high`) and a
//! minimal one (`medium`) for tiered prompts; a tier it lacks uses the full text.
//! The live template is `config/prompts/ib-insight-v3.toml`, built into the binary; a candidate
//! is loaded from a file (`analyst.prompt_file`, or `replay prompts --prompt`). The version is
//! recorded on every insight, so old and new answers can be told apart.

use super::insight::PredictionType;
use super::tier::Tier;
use figment::providers::{Format, Toml};
use figment::Figment;
use serde::Deserialize;
use std::path::Path;

const LIVE: &str = include_str!("../../config/prompts/ib-insight-v3.toml");
const LIVE_NAME: &str = "config/prompts/ib-insight-v3.toml";
const TYPES_PLACEHOLDER: &str = "{prediction_types}";

#[derive(Debug, Clone, PartialEq)]
pub struct PromptTemplate {
    pub version: String,
    /// The rendered system text (placeholders filled in): the full prompt, for critical.
    pub system: String,
    /// The standard system text, for high.
    pub high: String,
    /// The minimal system text, for medium.
    pub medium: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    version: String,
    system: String,
    high: Option<String>,
    medium: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("prompt template {source_name}: {reason}")]
pub struct TemplateError {
    pub source_name: String,
    pub reason: String,
}

impl PromptTemplate {
    /// The live template, as built into the binary.
    pub fn live() -> PromptTemplate {
        PromptTemplate::parse(LIVE, LIVE_NAME).expect("the built-in prompt template is valid")
    }

    /// Load a template file.
    pub fn load(path: &Path) -> Result<PromptTemplate, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|e| TemplateError {
            source_name: path.display().to_string(),
            reason: format!("cannot read: {e}"),
        })?;
        PromptTemplate::parse(&text, &path.display().to_string())
    }

    /// The live template unless `path` is set.
    pub fn from_config(path: &str) -> Result<PromptTemplate, TemplateError> {
        if path.trim().is_empty() {
            Ok(PromptTemplate::live())
        } else {
            PromptTemplate::load(Path::new(path))
        }
    }

    pub fn parse(text: &str, source_name: &str) -> Result<PromptTemplate, TemplateError> {
        let err = |reason: String| TemplateError {
            source_name: source_name.to_string(),
            reason,
        };
        let file: TemplateFile = Figment::from(Toml::string(text))
            .extract()
            .map_err(|e| err(e.to_string()))?;
        let version_ok = (1..=64).contains(&file.version.len())
            && file
                .version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !version_ok {
            return Err(err(format!(
                "version {:?} must be 1 to 64 of [A-Za-z0-9._-]",
                file.version
            )));
        }
        if file.system.trim().is_empty() {
            return Err(err("system is empty".into()));
        }
        for (key, text) in [("high", &file.high), ("medium", &file.medium)] {
            if text.as_ref().is_some_and(|t| t.trim().is_empty()) {
                return Err(err(format!("{key} is empty")));
            }
        }
        let types = PredictionType::ALL
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", ");
        let render = |t: &str| t.replace(TYPES_PLACEHOLDER, &types);
        let system = render(&file.system);
        Ok(PromptTemplate {
            version: file.version,
            high: file.high.as_deref().map_or_else(|| system.clone(), render),
            medium: file
                .medium
                .as_deref()
                .map_or_else(|| system.clone(), render),
            system,
        })
    }

    /// The system text of `tier`.
    pub fn system_for(&self, tier: Tier) -> &str {
        match tier {
            Tier::Critical => &self.system,
            Tier::High => &self.high,
            Tier::Medium => &self.medium,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_template_lists_every_prediction_type_and_keeps_its_version() {
        let t = PromptTemplate::live();
        assert_eq!(t.version, "ib-insight-v3");
        for tier in [Tier::Critical, Tier::High, Tier::Medium] {
            let text = t.system_for(tier);
            assert!(!text.contains(TYPES_PLACEHOLDER), "{tier:?}");
            for p in PredictionType::ALL {
                assert!(text.contains(p.name()), "{tier:?}: {}", p.name());
            }
            assert!(text.contains(crate::analyst::schema::TOOL_NAME), "{tier:?}");
        }
        // Each tier is shorter than the one above it; only the full prompt has examples.
        assert!(t.medium.len() < t.high.len() && t.high.len() < t.system.len());
        assert!(t.system.contains("EXAMPLE") && !t.high.contains("EXAMPLE"));
        assert!(t
            .system
            .starts_with("You are an InfiniBand network operations expert"));
    }

    #[test]
    fn bad_templates_name_the_problem() {
        let e = PromptTemplate::parse("version = \"v 1\"\nsystem = \"x\"", "cand.toml")
            .expect_err("bad version");
        assert!(
            e.to_string().contains("cand.toml") && e.to_string().contains("\"v 1\""),
            "{e}"
        );
        let e = PromptTemplate::parse("version = \"v2\"\nsystem = \"  \"", "cand.toml")
            .expect_err("empty");
        assert!(e.to_string().contains("system is empty"), "{e}");
        let e = PromptTemplate::parse("version = \"v2\"\nsystem = \"x\"\nmedium = \"\"", "c.toml")
            .expect_err("empty tier");
        assert!(e.to_string().contains("medium is empty"), "{e}");
        // A template without tiers asks every tier with its one text.
        let t = PromptTemplate::parse("version = \"v1\"\nsystem = \"x\"", "c.toml").expect("ok");
        assert_eq!((t.high.as_str(), t.medium.as_str()), ("x", "x"));
        let e = PromptTemplate::parse("version = \"v2\"", "cand.toml").expect_err("missing");
        assert!(e.to_string().contains("system"), "{e}");
        let e = PromptTemplate::parse("version = \"v2\"\nsystem = \"x\"\nextra = 1", "cand.toml")
            .expect_err("unknown key");
        assert!(e.to_string().contains("extra"), "{e}");
    }
}
