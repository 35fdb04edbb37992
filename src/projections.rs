//! Projections: read models and sinks fed by tailing the event log from a stored checkpoint.
//!
//! - `runner`: the tailing loop shared by every projection (checkpointed, atomic for local
//!   writes, retried with backoff, lag measured).
//! - `alerts`: the alert actor: insights in, deduplicated `AlertRaised`/`AlertSuppressed` out.
//! - `views`: the embedded `insights` and `alerts` views the API reads with no AWS at all.
//! - `items`: the item shape shared by every sink.
//! - `dynamodb`, `eventbridge`: the AWS sinks (off by default).
//! - `notify`: Alertmanager and webhooks, the operators' own alerting (off by default).

pub mod alerts;
pub mod digest;
pub mod dynamodb;
pub mod eventbridge;
pub mod fabric;
pub mod incidents;
pub mod items;
pub mod notify;
pub mod runner;
pub mod views;
