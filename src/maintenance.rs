//! Maintenance windows: planned work on nodes or ports ("leaf07 is recabled from 14:00 to
//! 16:00"). During a window, anomalies on those ports are still recorded and grouped into
//! incidents, but an incident whose every port is in a window opens no alert and makes no
//! model call: the rules backend answers it, and the incident says which windows it is in.
//!
//! Windows are events in the `#maintenance` stream (`MaintenanceScheduled`,
//! `MaintenanceEnded`), so replay gives the same result. A window counts for an anomaly only
//! if the log held it before the anomaly, whatever its `from`: a decision made once is never
//! changed by a window posted later.
//!
//! - `target`: what a window names (nodes by description pattern or GUID, ports) and whether
//!   a port or its cable's far end is one of them;
//! - `window`: one window, and the book of every window, folded from the stream;
//! - `request`: a posted window, validated field by field;
//! - `log`: appending windows and their ends to the log, and reading them back.

pub mod log;
pub mod request;
pub mod target;
pub mod window;

#[cfg(test)]
mod tests;

/// The log stream of maintenance windows (`#` never starts a port's id).
pub const MAINTENANCE_STREAM: &str = "#maintenance";

/// The reason an insight names when the rules answered because of a window.
pub use crate::vocab::MAINTENANCE_REASON;
