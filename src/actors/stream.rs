//! The stream actor: one per stream (port or link). It decides, appends, then applies.
//!
//! - `state`: `StreamState`, the pure `decide` and `apply`, and recovery from the log.
//! - `messages`: what the actor is asked (`StreamMsg`) and answers.
//! - `actor`: the ractor glue: append through the group-commit writer, snapshots.

pub mod actor;
pub mod messages;
pub mod state;

#[cfg(test)]
mod tests;

pub use actor::{StreamActor, StreamArgs, StreamContext};
pub use messages::{ObserveOutcome, StreamError, StreamMsg, StreamView};
pub use state::StreamState;
