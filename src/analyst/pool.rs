//! The analyst pool, built on `ractor::factory`: queuer routing over a priority queue
//! (critical anomalies first), a bounded queue whose overflow — the oldest job of the lowest
//! severity — is answered at once by the rules backend with reason `queue_full`, and a
//! dead-man's switch longer than the longest model call. Rate limiting and retries live in the
//! workers (the `Analyst`), never as a router that drops jobs.
//!
//! In front of the factory an intake groups anomalies that arrive together (a fault storm) into
//! batches of up to `batch_max` of the same severity, so one model call answers several.
//! Every job's outcome goes to `Deliver`, whatever happens to it.

use super::insight::InsightSource;
use super::job::AnomalyJob;
use super::service::{Analyst, InsightOutcome};
use crate::detect::rules::Severity;
use crate::telemetry::context;
use ractor::factory::queues::{PriorityManager, PriorityQueue, StandardPriority};
use ractor::factory::routing::QueuerRouting;
use ractor::factory::*;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::Instrument;

/// Receives each job's outcome (the stream actor appends it as `InsightGenerated`).
pub type Deliver = Arc<dyn Fn(AnomalyJob, InsightOutcome) + Send + Sync>;

/// A queued unit of work: its priority and a unique id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BatchKey {
    pub priority: StandardPriority,
    pub id: u64,
}

/// Anomalies answered by one model call.
pub struct AnalyseBatch {
    pub jobs: Vec<AnomalyJob>,
}

fn priority_of(severity: Severity) -> StandardPriority {
    match severity {
        Severity::Critical => StandardPriority::Highest,
        Severity::Major => StandardPriority::High,
        Severity::Warning => StandardPriority::Normal,
    }
}

struct ByPriority;

impl PriorityManager<BatchKey, StandardPriority> for ByPriority {
    fn get_priority(&self, key: &BatchKey) -> Option<StandardPriority> {
        Some(key.priority)
    }

    fn is_discardable(&self, _key: &BatchKey) -> bool {
        true
    }
}

/// Overflow is never dropped: the rules backend answers it with reason `queue_full`.
struct AnswerOverflow {
    analyst: Arc<Analyst>,
    deliver: Deliver,
}

impl DiscardHandler<BatchKey, AnalyseBatch> for AnswerOverflow {
    fn discard(&self, reason: DiscardReason, job: &mut Job<BatchKey, AnalyseBatch>) {
        tracing::warn!(
            ?reason,
            anomalies = job.msg.jobs.len(),
            "analyst queue full; rules answer"
        );
        for j in job.msg.jobs.drain(..) {
            let outcome = self
                .analyst
                .rules_outcome(&j, InsightSource::Fallback, "queue_full");
            self.analyst.count_outcome(&outcome);
            (self.deliver)(j, outcome);
        }
    }
}

struct AnalystWorker {
    analyst: Arc<Analyst>,
    deliver: Deliver,
}

/// Jobs a worker holds and has not answered yet. If the worker is stopped mid-batch (the
/// watchdog, a panic, shutdown), dropping the guard answers them with the rules (reason
/// `worker_stopped`), so no job vanishes and the queue depth stays exact.
struct Unanswered {
    jobs: Vec<AnomalyJob>,
    analyst: Arc<Analyst>,
    deliver: Deliver,
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if self.jobs.is_empty() {
            return;
        }
        tracing::warn!(
            anomalies = self.jobs.len(),
            "analyst worker stopped mid-batch; rules answer"
        );
        for j in self.jobs.drain(..) {
            let outcome = self
                .analyst
                .rules_outcome(&j, InsightSource::Fallback, "worker_stopped");
            self.analyst.count_outcome(&outcome);
            (self.deliver)(j, outcome);
        }
    }
}

impl Actor for AnalystWorker {
    type Msg = WorkerMessage<BatchKey, AnalyseBatch>;
    type State = WorkerStartContext<BatchKey, AnalyseBatch, ()>;
    type Arguments = WorkerStartContext<BatchKey, AnalyseBatch, ()>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        ctx: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(ctx)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        ctx: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMessage::FactoryPing(time) => {
                ctx.factory
                    .cast(FactoryMessage::WorkerPong(ctx.wid, time.elapsed()))?;
            }
            WorkerMessage::Dispatch(job) => {
                let mut held = Unanswered {
                    jobs: job.msg.jobs,
                    analyst: self.analyst.clone(),
                    deliver: self.deliver.clone(),
                };
                let jobs = &held.jobs;
                // One span per batch: its parent is the first traced anomaly, the others are
                // links. Each insight then points at this span.
                let span = context::span_for(
                    jobs.iter().filter_map(|j| j.origin.trace.as_ref()),
                    || tracing::info_span!(parent: None, "analyst.batch", anomalies = jobs.len() as i64),
                );
                let traced = context::context_of(&span);
                let outcomes = self.analyst.analyse(jobs).instrument(span).await;
                let jobs = std::mem::take(&mut held.jobs);
                for (mut j, o) in jobs.into_iter().zip(outcomes) {
                    if traced.is_some() {
                        j.origin.trace = traced;
                    }
                    (self.deliver)(j, o);
                }
                ctx.factory
                    .cast(FactoryMessage::Finished(ctx.wid, job.key))?;
            }
        }
        Ok(())
    }
}

struct Builder {
    analyst: Arc<Analyst>,
    deliver: Deliver,
}

impl WorkerBuilder<AnalystWorker, ()> for Builder {
    fn build(&mut self, _wid: usize) -> (AnalystWorker, ()) {
        (
            AnalystWorker {
                analyst: self.analyst.clone(),
                deliver: self.deliver.clone(),
            },
            (),
        )
    }
}

type PoolFactory = Factory<
    BatchKey,
    AnalyseBatch,
    (),
    AnalystWorker,
    QueuerRouting<BatchKey, AnalyseBatch>,
    PriorityQueue<
        BatchKey,
        AnalyseBatch,
        StandardPriority,
        ByPriority,
        { StandardPriority::size() },
    >,
>;

/// The handle the stream actors submit anomalies to.
#[derive(Clone)]
pub struct AnalystPool {
    intake: mpsc::UnboundedSender<AnomalyJob>,
    deliver: Deliver,
    factory: ActorRef<FactoryMessage<BatchKey, AnalyseBatch>>,
    pub analyst: Arc<Analyst>,
    depth: Arc<AtomicU64>,
}

impl AnalystPool {
    /// Start the factory and the batching intake. `linger` is how long the intake waits for
    /// more anomalies to fill a batch.
    pub async fn start(
        analyst: Arc<Analyst>,
        deliver: Deliver,
        linger: Duration,
    ) -> Result<AnalystPool, ractor::SpawnErr> {
        let cfg = analyst.config().clone();
        // Queue depth: anomalies submitted and not yet answered.
        let depth = Arc::new(AtomicU64::new(0));
        let inner = deliver;
        let counted = depth.clone();
        let deliver: Deliver = Arc::new(move |job, outcome| {
            counted.fetch_sub(1, Ordering::Relaxed);
            inner(job, outcome)
        });
        let deliver_handle = deliver.clone();
        // Every batch ends by its deadline; the watchdog only catches a worker truly stuck.
        let longest_call = cfg.batch_deadline() + Duration::from_secs(30);
        let args = FactoryArguments::builder()
            .worker_builder(Box::new(Builder {
                analyst: analyst.clone(),
                deliver: deliver.clone(),
            }))
            .queue(PriorityQueue::new(ByPriority))
            .router(QueuerRouting::default())
            .num_initial_workers(cfg.workers)
            .discard_settings(DiscardSettings::Static {
                limit: cfg.queue_capacity,
                mode: DiscardMode::Oldest,
            })
            .discard_handler(Arc::new(AnswerOverflow {
                analyst: analyst.clone(),
                deliver: deliver.clone(),
            }))
            .dead_mans_switch(DeadMansSwitchConfiguration {
                detection_timeout: longest_call,
                kill_worker: true,
            })
            .build();
        let (factory, _) = Actor::spawn(None, PoolFactory::default(), args).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(intake(rx, factory.clone(), cfg.batch_max, linger));
        Ok(AnalystPool {
            intake: tx,
            deliver: deliver_handle,
            factory,
            analyst,
            depth,
        })
    }

    /// Submit an anomaly. Never blocks; its insight arrives through `Deliver`.
    pub fn submit(&self, job: AnomalyJob) {
        self.depth.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.intake.send(job) {
            // The intake is gone (shutdown): answer now rather than lose the anomaly.
            let job = e.0;
            tracing::warn!(stream_id = %job.stream_id, "analyst pool stopped; rules answer");
            let outcome = self
                .analyst
                .rules_outcome(&job, InsightSource::Fallback, "pool_stopped");
            self.analyst.count_outcome(&outcome);
            (self.deliver)(job, outcome);
        }
    }

    /// Anomalies submitted and not yet answered (the metrics endpoint's queue depth).
    pub fn queue_depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    pub fn stop(&self) {
        self.factory.stop(None);
    }
}

/// Group arriving anomalies into batches of one severity, up to `batch_max`, waiting at most
/// `linger` for a batch to fill, and hand them to the factory.
async fn intake(
    mut rx: mpsc::UnboundedReceiver<AnomalyJob>,
    factory: ActorRef<FactoryMessage<BatchKey, AnalyseBatch>>,
    batch_max: usize,
    linger: Duration,
) {
    let mut next_id = 0u64;
    while let Some(first) = rx.recv().await {
        let mut pending = vec![first];
        let deadline = tokio::time::Instant::now() + linger;
        while pending.len() < batch_max * 3 {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(job)) => pending.push(job),
                _ => break,
            }
        }
        for severity in [Severity::Critical, Severity::Major, Severity::Warning] {
            let mut same: Vec<AnomalyJob> = Vec::new();
            pending.retain(|j| {
                if j.severity() == severity {
                    same.push(j.clone());
                    false
                } else {
                    true
                }
            });
            while !same.is_empty() {
                let rest = same.split_off(same.len().min(batch_max));
                let batch = std::mem::replace(&mut same, rest);
                next_id += 1;
                let job = Job {
                    key: BatchKey {
                        priority: priority_of(severity),
                        id: next_id,
                    },
                    msg: AnalyseBatch { jobs: batch },
                    options: JobOptions::default(),
                    accepted: None,
                };
                if factory.cast(FactoryMessage::Dispatch(job)).is_err() {
                    tracing::error!("analyst factory stopped");
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyst::rules_backend::tests::job;
    use crate::analyst::AnalystConfig;
    use crate::detect::rules::Rule;
    use std::sync::Mutex;

    #[tokio::test]
    async fn jobs_held_by_a_worker_that_stops_mid_batch_are_answered_by_the_rules() {
        // Given a worker holding two jobs,
        let analyst = Arc::new(Analyst::new(
            AnalystConfig::default(),
            None,
            Duration::from_millis(5),
            0,
        ));
        let delivered: Arc<Mutex<Vec<InsightOutcome>>> = Arc::default();
        let sink = delivered.clone();
        let deliver: Deliver = Arc::new(move |_, o| sink.lock().expect("lock").push(o));
        let held = Unanswered {
            jobs: vec![
                job(Rule::LatencySpike, "latency_p99", 12.0, Severity::Major),
                job(
                    Rule::UtilizationHigh,
                    "utilization",
                    97.0,
                    Severity::Critical,
                ),
            ],
            analyst,
            deliver,
        };
        // when its batch future is dropped (the actor was killed) before it answered,
        drop(held);
        // then every job still gets its insight, from the rules, saying why.
        let got = delivered.lock().expect("lock").clone();
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|o| o.source == InsightSource::Fallback
            && o.reason.as_deref() == Some("worker_stopped")));
    }
}
