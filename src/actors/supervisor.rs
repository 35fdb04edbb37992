//! The stream supervisor. ractor never restarts a child itself; this actor does, one-for-one:
//! a failed stream actor is respawned at once (it rebuilds from snapshot + log) while the
//! stream stays within its restart budget; past the budget the stream is quarantined for the
//! budget window, so a poison sample cannot spin the node. It also passivates idle actors.
//!
//! Spawning goes through this actor's mailbox, so two requests racing for a new stream
//! cannot create two actors for it.

use super::stream::{StreamActor, StreamArgs, StreamContext, StreamMsg};
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Live stream actors by stream id, with the time each was last used.
pub type Registry = Arc<Mutex<HashMap<String, (ActorRef<StreamMsg>, Instant)>>>;

#[derive(Debug, Clone, Copy)]
pub struct SupervisionPolicy {
    pub max_restarts: usize,
    pub restart_window: Duration,
    pub passivate_after: Duration,
    pub sweep_every: Duration,
    /// Most live stream actors; past it the idlest are passivated at the next sweep.
    pub max_live: usize,
}

pub enum SupervisorMsg {
    Spawn {
        stream_id: String,
        reply: RpcReplyPort<Result<ActorRef<StreamMsg>, SpawnError>>,
    },
    /// Passivate actors idle for longer than the policy allows.
    Sweep,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SpawnError {
    #[error("stream {stream_id} is quarantined for {retry_after_s} s after repeated failures")]
    Quarantined {
        stream_id: String,
        retry_after_s: u64,
    },
    #[error("stream {stream_id} could not start: {reason}")]
    Failed { stream_id: String, reason: String },
}

pub struct StreamSupervisor;

pub struct SupervisorArgs {
    pub registry: Registry,
    /// Restarts done so far, for metrics and tests.
    pub restarts: Arc<AtomicU64>,
    pub ctx: Arc<StreamContext>,
    pub policy: SupervisionPolicy,
}

pub struct SupervisorState {
    registry: Registry,
    restarts_total: Arc<AtomicU64>,
    ctx: Arc<StreamContext>,
    policy: SupervisionPolicy,
    children: HashMap<ActorId, String>,
    restarts: HashMap<String, VecDeque<Instant>>,
    quarantined: HashMap<String, Instant>,
}

impl Actor for StreamSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        myself.send_interval(args.policy.sweep_every, || SupervisorMsg::Sweep);
        Ok(SupervisorState {
            registry: args.registry,
            restarts_total: args.restarts,
            ctx: args.ctx,
            policy: args.policy,
            children: HashMap::new(),
            restarts: HashMap::new(),
            quarantined: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        st: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Spawn { stream_id, reply } => {
                let live = lock(&st.registry).get(&stream_id).map(|(a, _)| a.clone());
                let result = match live {
                    Some(actor) => Ok(actor),
                    None => spawn(&myself, st, stream_id).await,
                };
                let _ = reply.send(result);
            }
            SupervisorMsg::Sweep => passivate_idle(st),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        evt: SupervisionEvent,
        st: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorFailed(cell, err) => {
                let Some(stream_id) = forget(st, cell.get_id()) else {
                    return Ok(());
                };
                tracing::warn!(stream_id = %stream_id, error = %err, "stream actor failed");
                if within_budget(st, &stream_id) {
                    st.restarts_total.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = spawn(&myself, st, stream_id).await {
                        tracing::error!(error = %e, "stream actor restart failed");
                    }
                } else {
                    tracing::error!(stream_id = %stream_id, "restart budget exhausted; quarantining stream");
                    st.quarantined
                        .insert(stream_id, Instant::now() + st.policy.restart_window);
                }
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                forget(st, cell.get_id());
            }
            _ => {}
        }
        Ok(())
    }
}

fn lock(
    registry: &Registry,
) -> std::sync::MutexGuard<'_, HashMap<String, (ActorRef<StreamMsg>, Instant)>> {
    registry.lock().expect("registry lock poisoned")
}

async fn spawn(
    myself: &ActorRef<SupervisorMsg>,
    st: &mut SupervisorState,
    stream_id: String,
) -> Result<ActorRef<StreamMsg>, SpawnError> {
    if let Some(until) = st.quarantined.get(&stream_id).copied() {
        let now = Instant::now();
        if until > now {
            return Err(SpawnError::Quarantined {
                stream_id,
                retry_after_s: (until - now).as_secs().max(1),
            });
        }
        st.quarantined.remove(&stream_id);
        st.restarts.remove(&stream_id);
    }
    let args = StreamArgs {
        stream_id: stream_id.clone(),
        ctx: st.ctx.clone(),
    };
    match Actor::spawn_linked(None, StreamActor, args, myself.get_cell()).await {
        Ok((actor, _)) => {
            st.children.insert(actor.get_id(), stream_id.clone());
            lock(&st.registry).insert(stream_id, (actor.clone(), Instant::now()));
            Ok(actor)
        }
        Err(e) => Err(SpawnError::Failed {
            stream_id,
            reason: e.to_string(),
        }),
    }
}

/// Drop a stopped child from the books; returns its stream id.
fn forget(st: &mut SupervisorState, id: ActorId) -> Option<String> {
    let stream_id = st.children.remove(&id)?;
    let mut registry = lock(&st.registry);
    if registry
        .get(&stream_id)
        .is_some_and(|(a, _)| a.get_id() == id)
    {
        registry.remove(&stream_id);
    }
    Some(stream_id)
}

fn within_budget(st: &mut SupervisorState, stream_id: &str) -> bool {
    let now = Instant::now();
    let window = st.policy.restart_window;
    let history = st.restarts.entry(stream_id.to_string()).or_default();
    while history
        .front()
        .is_some_and(|t| now.duration_since(*t) > window)
    {
        history.pop_front();
    }
    history.push_back(now);
    history.len() <= st.policy.max_restarts
}

/// Passivate actors idle past the policy, then the idlest beyond `max_live`; forget restart
/// histories older than the restart window, so no per-stream book outlives its use.
fn passivate_idle(st: &mut SupervisorState) {
    let now = Instant::now();
    let idle = idle_streams(&lock(&st.registry), now, &st.policy);
    let mut registry = lock(&st.registry);
    for stream_id in &idle {
        if let Some((actor, _)) = registry.remove(stream_id) {
            // Drain: messages already queued are still handled, then the actor stops.
            let _ = actor.drain();
        }
    }
    drop(registry);
    if !idle.is_empty() {
        tracing::debug!(count = idle.len(), "passivated idle stream actors");
    }
    let window = st.policy.restart_window;
    st.restarts
        .retain(|_, h| h.back().is_some_and(|t| now.duration_since(*t) <= window));
    st.quarantined.retain(|_, until| *until > now);
}

/// The streams to passivate: idle past `passivate_after`, then the least recently used
/// beyond `max_live`. Pure over the registry's last-use times.
pub fn idle_streams<A>(
    registry: &HashMap<String, (A, Instant)>,
    now: Instant,
    policy: &SupervisionPolicy,
) -> Vec<String> {
    let mut by_use: Vec<(&String, Instant)> =
        registry.iter().map(|(id, (_, t))| (id, *t)).collect();
    by_use.sort_by_key(|(_, used)| *used);
    let over = by_use.len().saturating_sub(policy.max_live);
    by_use
        .iter()
        .enumerate()
        .filter(|(i, (_, used))| *i < over || now.duration_since(*used) > policy.passivate_after)
        .map(|(_, (id, _))| (*id).clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idlest_beyond_the_cap_and_the_idle_are_passivated() {
        let policy = SupervisionPolicy {
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            passivate_after: Duration::from_secs(600),
            sweep_every: Duration::from_secs(1),
            max_live: 2,
        };
        let now = Instant::now() + Duration::from_secs(10_000);
        let at = |s: u64| now - Duration::from_secs(s);
        let registry: HashMap<String, ((), Instant)> = [
            ("a".to_string(), ((), at(5))),
            ("b".to_string(), ((), at(50))),
            ("c".to_string(), ((), at(1))),
            ("d".to_string(), ((), at(30))),
        ]
        .into();
        let mut out = idle_streams(&registry, now, &policy);
        out.sort();
        // Four live, a cap of two: the two least recently used go.
        assert_eq!(out, vec!["b".to_string(), "d".to_string()]);
        let registry: HashMap<String, ((), Instant)> = [
            ("a".to_string(), ((), at(700))),
            ("c".to_string(), ((), at(1))),
        ]
        .into();
        assert_eq!(idle_streams(&registry, now, &policy), vec!["a".to_string()]);
    }
}
