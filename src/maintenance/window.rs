//! One maintenance window, and the book of them all, folded from `#maintenance`. Pure: the
//! correlator asks which windows cover an incident at the time and log offset of the change.

use super::target::{NodeTarget, PortTarget, Targets};
use crate::events::types::{IncidentScope, IncidentV2, MaintenanceScheduledV1};
use crate::events::StreamEvent;
use std::collections::BTreeMap;

/// Where a window stands at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Upcoming,
    Active,
    Ended,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Upcoming => "upcoming",
            Status::Active => "active",
            Status::Ended => "ended",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub scheduled: MaintenanceScheduledV1,
    pub targets: Targets,
    /// The log offset of its `MaintenanceScheduled`: it counts only for later anomalies.
    pub known_at: u64,
    /// Ended early: the offset and time of its `MaintenanceEnded`.
    pub ended: Option<(u64, i64)>,
}

impl Window {
    pub fn new(scheduled: MaintenanceScheduledV1, known_at: u64) -> Window {
        // Targets were validated when the window was posted; one that no longer parses (never
        // expected) names nothing rather than everything.
        let targets = Targets {
            nodes: scheduled
                .nodes
                .iter()
                .filter_map(|n| NodeTarget::parse(n).ok())
                .collect(),
            ports: scheduled
                .ports
                .iter()
                .filter_map(|p| PortTarget::parse(p).ok())
                .collect(),
        };
        Window {
            scheduled,
            targets,
            known_at,
            ended: None,
        }
    }

    pub fn id(&self) -> &str {
        &self.scheduled.window_id
    }

    /// When it stops counting: its `until`, or its early end.
    pub fn end_ms(&self) -> i64 {
        match self.ended {
            Some((_, at)) => at.min(self.scheduled.until_ms),
            None => self.scheduled.until_ms,
        }
    }

    pub fn status(&self, now_ms: i64) -> Status {
        if now_ms >= self.end_ms() {
            Status::Ended
        } else if now_ms < self.scheduled.from_ms {
            Status::Upcoming
        } else {
            Status::Active
        }
    }

    /// Counts for a change at `at_ms` that the log holds at `offset`: the window was in the
    /// log before it, and `at_ms` falls between its start and its end as known then.
    pub fn in_force(&self, at_ms: i64, offset: u64) -> bool {
        if self.known_at >= offset || at_ms < self.scheduled.from_ms {
            return false;
        }
        let end = match self.ended {
            Some((end_offset, end_at)) if end_offset < offset => {
                end_at.min(self.scheduled.until_ms)
            }
            _ => self.scheduled.until_ms,
        };
        at_ms < end
    }

    /// Whether this window covers one member of `inc`: the port, the far end of its cable, the
    /// incident's node, or (for a link incident) the other end of the same cable.
    fn covers(&self, inc: &IncidentV2, member: usize) -> bool {
        let t = &self.targets;
        let direct = |i: usize| {
            let m = &inc.members[i];
            t.names_port(&m.stream_id, &m.port) || m.peer.as_ref().is_some_and(|p| t.names_peer(p))
        };
        if direct(member) {
            return true;
        }
        if let Some(node) = &inc.node {
            if t.names_node(node.node_guid, node.node_desc.as_deref()) {
                return true;
            }
        }
        inc.scope == IncidentScope::Link && (0..inc.members.len()).any(direct)
    }
}

/// Every window, by id.
#[derive(Debug, Clone, Default)]
pub struct MaintenanceBook {
    pub windows: BTreeMap<String, Window>,
}

impl MaintenanceBook {
    /// Fold one `#maintenance` event, held by the log at `offset`. Idempotent.
    pub fn apply(&mut self, event: &StreamEvent, offset: u64) {
        match event {
            StreamEvent::MaintenanceScheduled(s) => {
                self.windows
                    .entry(s.window_id.clone())
                    .or_insert_with(|| Window::new(s.clone(), offset));
            }
            StreamEvent::MaintenanceEnded(e) => {
                if let Some(w) = self.windows.get_mut(&e.window_id) {
                    if w.ended.is_none() {
                        w.ended = Some((offset, e.at_ms));
                    }
                }
            }
            _ => {}
        }
    }

    /// The windows an incident is in at a change at `at_ms` held at `offset`: every member is
    /// covered by one of them. Empty when a member is covered by none (then the incident is
    /// more than planned work), or when it has no member.
    pub fn covering(&self, inc: &IncidentV2, at_ms: i64, offset: u64) -> Vec<String> {
        if inc.members.is_empty() {
            return Vec::new();
        }
        let in_force: Vec<&Window> = self
            .windows
            .values()
            .filter(|w| w.in_force(at_ms, offset))
            .collect();
        if in_force.is_empty() {
            return Vec::new();
        }
        let mut used = std::collections::BTreeSet::new();
        for member in 0..inc.members.len() {
            let covering: Vec<&&Window> =
                in_force.iter().filter(|w| w.covers(inc, member)).collect();
            if covering.is_empty() {
                return Vec::new();
            }
            used.extend(covering.iter().map(|w| w.id().to_string()));
        }
        used.into_iter().collect()
    }

    /// Name on `inc` the windows it is in at a change (`at_ms`, held at `offset`), given
    /// whether its previous change was in maintenance. An open incident that leaves
    /// maintenance (a port outside the windows joined, or the window ended) asks the analyst
    /// again. Returns whether it is in maintenance now (and still open).
    pub fn mark(&self, inc: &mut IncidentV2, was_in: bool, at_ms: i64, offset: u64) -> bool {
        inc.maintenance = self.covering(inc, at_ms, offset);
        let open = inc.resolved_at_ms.is_none() && inc.merged_into.is_none();
        if inc.maintenance.is_empty() && was_in && open {
            inc.analyse = true;
        }
        open && !inc.maintenance.is_empty()
    }

    /// An open incident that was in maintenance, once every window it was in is over at
    /// `now_ms` (ended early or past `until`, as the log knows now): the incident to write,
    /// naming no window and asking the analyst again. `None` while a window still covers it.
    pub fn lapsed(&self, inc: &IncidentV2, now_ms: i64) -> Option<IncidentV2> {
        let mut out = inc.clone();
        out.at_ms = now_ms;
        out.analyse = false;
        let still_in = self.mark(&mut out, true, now_ms, u64::MAX);
        (!still_in && out.analyse).then_some(out)
    }
}
