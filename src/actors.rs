//! The actor tree.
//!
//! ```text
//! StreamSupervisor ── one-for-one, restart budget, passivation sweep
//!   ├── StreamActor[stream_id]   (spawned on first sample, rebuilt from snapshot + log tail)
//!   ├── StreamActor[…]
//!   └── …
//! StreamRouter (not an actor): the one place that knows where a stream's actor lives
//! ```
//!
//! Callers reach stream actors only through the router, never by holding an `ActorRef`: a
//! restarted or re-activated actor is a new actor.
//!
//! - `router`, `supervisor`, `stream`: the tree above;
//! - `stale`: streams that stop reporting;
//! - `handover`: what a node does with its actors when the cluster moves its shard leases.

pub mod handover;
pub mod router;
pub mod stale;
pub mod stream;
pub mod supervisor;

pub use router::{RouteError, StreamRouter};
