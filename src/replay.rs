//! Replaying the event log: the payoff of event sourcing.
//!
//! - `audit`: verify every record (CRC, seq continuity) and re-run the stream decisions from
//!   the recorded samples with today's detection code, comparing with the recorded anomalies.
//! - `rebuild`: re-run a projection from the log, and verify the embedded views against it.
//! - `prompts`: ask a candidate prompt about every recorded anomaly, side by side with the log.
//! - `series`: a stream's recent samples against its baseline band (the dashboard's chart).
//! - `snapshot`: a private copy of a data directory, so a replay never touches the live log.

pub mod audit;
pub mod prompts;
pub mod rebuild;
pub mod series;
pub mod snapshot;
