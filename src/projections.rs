//! Projections: read models and sinks fed by tailing the event log from a stored checkpoint.
//!
//! - `runner`: the generic tailing loop (read from the checkpoint, handle, advance the
//!   checkpoint durably), shared by every projection.

pub mod runner;
