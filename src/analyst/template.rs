//! Prompt templates: the static system text of every model call, in a file with a version id.
//! The live template is `config/prompts/ib-insight-v2.toml`, built into the binary; a candidate
//! is loaded from a file (`analyst.prompt_file`, or `replay prompts --prompt`). The version is
//! recorded on every insight, so old and new answers can be told apart.

use super::insight::PredictionType;
use figment::providers::{Format, Toml};
use figment::Figment;
use serde::Deserialize;
use std::path::Path;

const LIVE: &str = include_str!("../../config/prompts/ib-insight-v2.toml");
const TYPES_PLACEHOLDER: &str = "{prediction_types}";

#[derive(Debug, Clone, PartialEq)]
pub struct PromptTemplate {
    pub version: String,
    /// The rendered system text (placeholders filled in).
    pub system: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    version: String,
    system: String,
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
        PromptTemplate::parse(LIVE, "config/prompts/ib-insight-v2.toml")
            .expect("the built-in prompt template is valid")
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
        let types = PredictionType::ALL
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", ");
        Ok(PromptTemplate {
            version: file.version,
            system: file.system.replace(TYPES_PLACEHOLDER, &types),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_template_lists_every_prediction_type_and_keeps_its_version() {
        let t = PromptTemplate::live();
        assert_eq!(t.version, "ib-insight-v2");
        assert!(!t.system.contains(TYPES_PLACEHOLDER));
        for p in PredictionType::ALL {
            assert!(t.system.contains(p.name()), "{}", p.name());
        }
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
        let e = PromptTemplate::parse("version = \"v2\"", "cand.toml").expect_err("missing");
        assert!(e.to_string().contains("system"), "{e}");
        let e = PromptTemplate::parse("version = \"v2\"\nsystem = \"x\"\nextra = 1", "cand.toml")
            .expect_err("unknown key");
        assert!(e.to_string().contains("extra"), "{e}");
    }
}
