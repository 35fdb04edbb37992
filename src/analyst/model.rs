//! What every model backend shares: the request (system text, user text, parameters and the
//! insight schema the answer is forced into), the answer (the tool call's input, or text when
//! the model did not call the tool), the call errors, and the retries with backoff. The
//! backends render the request in their own wire format: `bedrock` (Anthropic messages on
//! InvokeModel) and `openai` (any OpenAI-compatible chat-completions endpoint).

use super::bedrock::BedrockModel;
use super::openai::OpenAiModel;
use serde_json::Value;
use std::time::{Duration, Instant};

/// One ask of a model, in no backend's format.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRequest {
    pub system: String,
    pub user: String,
    pub max_tokens: u32,
    pub temperature: f64,
    pub top_p: f64,
}

impl ModelRequest {
    /// FNV-1a 64 of everything the model is asked: identifies exactly the prompt.
    pub fn hash(&self) -> String {
        let text = format!(
            "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}",
            self.system,
            self.user,
            self.max_tokens,
            self.temperature,
            self.top_p,
            super::schema::TOOL_NAME
        );
        format!("{:016x}", crate::hash::fnv1a64(text.bytes()))
    }

    /// A rough size in tokens (4 characters a token), for the rate limiter's reservation.
    pub fn estimated_input_tokens(&self) -> u32 {
        ((self.system.len() + self.user.len() + super::schema::SCHEMA_CHARS) / 4) as u32
    }
}

/// What the model said, with its token usage.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelAnswer {
    /// The input of the insight tool call (or the schema-forced JSON), when there is one.
    pub tool_input: Option<Value>,
    /// The answer's text blocks (empty when the model only called the tool).
    pub text: String,
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// Why the model stopped (`end_turn`, `tool_use`, `stop`, `max_tokens`, …), when it said.
    pub stop_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    #[error("throttled: {0}")]
    Throttled(String),
    #[error("server error: {0}")]
    Server(String),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Transport(String),
    /// Validation, access denied, unknown model: retrying cannot help.
    #[error("rejected: {0}")]
    Rejected(String),
    #[error("unreadable response: {0}")]
    BadResponse(String),
}

impl CallError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            CallError::Throttled(_)
                | CallError::Server(_)
                | CallError::Timeout(_)
                | CallError::Transport(_)
        )
    }

    /// A short reason recorded on fallback insights.
    pub fn reason(&self) -> &'static str {
        match self {
            CallError::Throttled(_) => "throttled",
            CallError::Server(_) => "server_error",
            CallError::Timeout(_) => "timeout",
            CallError::Transport(_) => "unreachable",
            CallError::Rejected(_) => "rejected",
            CallError::BadResponse(_) => "bad_response",
        }
    }
}

/// A configured model of one backend.
#[derive(Clone)]
pub enum Model {
    Bedrock(BedrockModel),
    OpenAi(OpenAiModel),
}

impl From<BedrockModel> for Model {
    fn from(m: BedrockModel) -> Model {
        Model::Bedrock(m)
    }
}

impl From<OpenAiModel> for Model {
    fn from(m: OpenAiModel) -> Model {
        Model::OpenAi(m)
    }
}

impl Model {
    /// The model the analyst config asks for: `None` for the rules backend.
    pub async fn for_backend(
        cfg: &super::AnalystConfig,
        aws: &crate::aws::AwsConfig,
    ) -> anyhow::Result<Option<Model>> {
        let timeout = Duration::from_secs(cfg.timeout_s);
        Ok(match cfg.backend {
            super::Backend::Rules => None,
            super::Backend::Bedrock => Some(
                BedrockModel::from_env(aws, &cfg.model_id, timeout)
                    .await
                    .into(),
            ),
            super::Backend::OpenAi => Some(OpenAiModel::from_config(&cfg.openai, timeout)?.into()),
        })
    }

    pub fn model_id(&self) -> &str {
        match self {
            Model::Bedrock(m) => &m.model_id,
            Model::OpenAi(m) => &m.model,
        }
    }

    /// The OpenTelemetry `gen_ai.system` of the backend.
    pub fn system(&self) -> &'static str {
        match self {
            Model::Bedrock(_) => "aws.bedrock",
            Model::OpenAi(_) => "openai",
        }
    }

    /// One call, bounded by the per-call timeout.
    pub async fn invoke(&self, request: &ModelRequest) -> Result<ModelAnswer, CallError> {
        match self {
            Model::Bedrock(m) => m.invoke(request).await,
            Model::OpenAi(m) => m.invoke(request).await,
        }
    }
}

/// Exponential backoff with full jitter: a random delay in [0, base·2^attempt], capped.
pub fn backoff(attempt: u32, base: Duration, seed: u64) -> Duration {
    let cap = Duration::from_secs(5);
    let ceiling = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    let mut rng = crate::sim::Rng::new(seed ^ u64::from(attempt));
    ceiling.mul_f64(rng.unit())
}

/// The outcome of a call with retries.
#[derive(Debug)]
pub struct Attempted {
    pub result: Result<ModelAnswer, CallError>,
    pub attempts: u32,
    pub latency: Duration,
}

/// Call with retries on throttling, 5xx, timeouts and connection failures (none on
/// validation or access errors), up to `max_retries` retries.
pub async fn invoke_with_retries(
    model: &Model,
    request: &ModelRequest,
    max_retries: u32,
    base_delay: Duration,
) -> Attempted {
    let started = Instant::now();
    let seed = crate::clock::now_ms() as u64;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = model.invoke(request).await;
        match result {
            Err(e) if e.is_retryable() && attempts <= max_retries => {
                let delay = backoff(attempts - 1, base_delay, seed);
                tracing::debug!(error = %e, attempts, ?delay, "model call failed; retrying");
                tokio::time::sleep(delay).await;
            }
            result => {
                return Attempted {
                    result,
                    attempts,
                    latency: started.elapsed(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let base = Duration::from_millis(100);
        for attempt in 0..10 {
            let d = backoff(attempt, base, 42);
            let ceiling = (base * (1 << attempt)).min(Duration::from_secs(5));
            assert!(d <= ceiling, "attempt {attempt}: {d:?} > {ceiling:?}");
        }
        assert_ne!(backoff(3, base, 1), backoff(3, base, 2), "jitter");
    }

    #[test]
    fn only_transient_errors_are_retried() {
        assert!(CallError::Throttled("x".into()).is_retryable());
        assert!(CallError::Server("x".into()).is_retryable());
        assert!(CallError::Timeout(Duration::ZERO).is_retryable());
        assert!(!CallError::Rejected("ValidationException".into()).is_retryable());
        assert!(!CallError::BadResponse("x".into()).is_retryable());
    }
}
