//! One ibsight node: the event store, the group-commit writer, the actor tree, the router and
//! the background retention task, built from a `Config`. `serve`, `bench` and the tests all
//! start the same `Node`, so they exercise the same path.

use crate::actors::handover::NodeHandover;
use crate::actors::stream::StreamContext;
use crate::actors::supervisor::{
    Registry, StreamSupervisor, SupervisionPolicy, SupervisorArgs, SupervisorMsg,
};
use crate::actors::StreamRouter;
use crate::analyst::model::Model;
use crate::analyst::pool::{AnalystPool, Deliver};
use crate::analyst::service::Analyst;
use crate::api::AppState;
use crate::cluster::lease::{Held, PROJECTIONS};
use crate::cluster::membership::{Membership, SharedRoutes};
use crate::cluster::peers::{ClusterFence, Peers};
use crate::config::Config;
use crate::events::pg_store::PgStore;
use crate::events::retention::{self, RetentionPolicy};
use crate::events::writer::Writer;
use crate::events::Engine;
use crate::events::{open_embedded, EventStore, StoreError};
use crate::incidents::correlator::{Correlator, Inbox};
use crate::ingest::Ingestor;
use crate::metrics::ports::PortTable;
use crate::projections::alerts::AlertProjection;
use crate::projections::dynamodb::{DynamoProjection, DynamoSink};
use crate::projections::eventbridge::EventBridgeProjection;
use crate::projections::runner::{self, ProjectionLag};
use crate::projections::views::{self, ViewsProjection};
use ractor::{Actor, ActorRef};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

pub struct Node {
    pub config: Config,
    pub analyst: AnalystPool,
    /// The DynamoDB table, when `[dynamodb] enabled`.
    pub dynamo: Option<DynamoSink>,
    /// Lag of each projection, by name.
    pub projections: Vec<(&'static str, Arc<ProjectionLag>)>,
    projection_tasks: Vec<tokio::task::JoinHandle<()>>,
    pub router: StreamRouter,
    pub ingestor: Ingestor,
    pub writer: Writer,
    pub triage: Arc<crate::alerts::triage::Triage>,
    pub maintenance: Arc<crate::maintenance::log::MaintenanceLog>,
    /// Incidents waiting for their analysis.
    pub incidents_waiting: Arc<AtomicU64>,
    /// Each owned stream's last sample, for `GET /metrics/ports`.
    pub ports: Arc<PortTable>,
    supervisor: ActorRef<SupervisorMsg>,
    retention: tokio::task::JoinHandle<()>,
    packing: tokio::task::JoinHandle<()>,
    /// The lease loop, in a cluster.
    membership: Option<(Arc<Membership>, tokio::task::JoinHandle<()>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("actor system: {0}")]
    Actors(String),
    #[error("analyst.prompt_file: {0}")]
    Prompt(#[from] crate::analyst::template::TemplateError),
    #[error("analyst model: {0}")]
    Model(String),
}

impl Node {
    pub async fn start(config: Config) -> Result<Node, NodeError> {
        std::fs::create_dir_all(&config.server.data_dir).map_err(|e| StoreError::Open {
            path: config.server.data_dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let (store, pg): (Arc<dyn EventStore>, _) = match config.store.engine {
            Engine::Postgres => {
                let pg = Arc::new(PgStore::open_with(
                    &config.store.url,
                    &config.store.schema,
                    config.store.pool_size,
                    Some(&config.store.password),
                )?);
                (pg.clone(), Some(pg))
            }
            engine => (
                open_embedded(engine, &config.store, &config.server.data_dir)?,
                None,
            ),
        };
        let writer = Writer::spawn(store.clone(), config.store.max_batch_ops);
        // The pool's answers go to the correlator's inbox; it records them in `#incidents`.
        let inbox: Inbox = Arc::default();
        let analyst = start_analyst(&config, inbox.clone()).await?;
        let ports: Arc<PortTable> = Arc::default();
        let ctx = Arc::new(StreamContext {
            writer: writer.clone(),
            detect: config.detect.clone(),
            snapshot_every: config.store.snapshot_every,
            ports: ports.clone(),
        });
        let registry = Registry::default();
        let restarts = Arc::new(AtomicU64::new(0));
        let passivate_after = Duration::from_secs(config.actors.passivate_after_s);
        let policy = SupervisionPolicy {
            max_restarts: config.actors.max_restarts,
            restart_window: Duration::from_secs(config.actors.restart_window_s),
            passivate_after,
            sweep_every: (passivate_after / 4)
                .clamp(Duration::from_millis(200), Duration::from_secs(60)),
            max_live: config.actors.max_live_streams,
        };
        let (supervisor, _) = Actor::spawn(
            None,
            StreamSupervisor,
            SupervisorArgs {
                registry: registry.clone(),
                restarts: restarts.clone(),
                ctx,
                policy,
            },
        )
        .await
        .map_err(|e| NodeError::Actors(e.to_string()))?;
        let mut router = StreamRouter::new(registry, restarts, supervisor.clone(), store);
        // In a cluster, the projections, the analyst and retention run on the node holding the
        // projections lease; stream work on the holders of the shards' leases.
        let mut gate: runner::Gate = Arc::new(|| true);
        let mut membership = None;
        if let Some(pg) = &pg {
            let held = Arc::new(Held::default());
            let routes = SharedRoutes::default();
            pg.set_fence(Arc::new(ClusterFence {
                node_id: config.cluster.node_id.clone(),
                shards: config.cluster.shards,
                held: held.clone(),
            }))?;
            router = router.with_cluster(Peers::new(
                config.cluster.clone(),
                held.clone(),
                routes.clone(),
            ));
            let lease_loop = Arc::new(Membership::new(
                pg.new_pool(4)?,
                config.cluster.clone(),
                held.clone(),
                routes,
                Arc::new(NodeHandover {
                    router: router.clone(),
                    writer: writer.clone(),
                    ports: ports.clone(),
                    store: pg.clone(),
                }),
            ));
            // One tick before serving: a node alone takes every lease at once.
            if let Err(e) = lease_loop.tick().await {
                tracing::warn!(error = %e, "first membership tick failed; retrying in the background");
            }
            let task = lease_loop.spawn();
            membership = Some((lease_loop, task));
            gate = Arc::new(move || held.serves(PROJECTIONS));
        }
        let known_streams = crate::events::streams::ensure(writer.store().as_ref())?;
        let ingestor = Ingestor::new(router.clone(), config.ingest.max_inflight_samples)
            .with_stream_cap(known_streams, config.ingest.max_streams)
            .with_stale_intervals(config.detect.stale_intervals);
        let retention = tokio::spawn(run_retention(writer.clone(), &config, gate.clone()));
        let packing = tokio::spawn(run_packing(writer.store().clone(), &config));
        let poll = Duration::from_millis(100);
        let (alerts_task, alerts_lag) = runner::spawn_gated(
            writer.clone(),
            AlertProjection::new(config.alerts.clone()),
            poll,
            gate.clone(),
        );
        let (views_task, views_lag) = runner::spawn_gated(
            writer.clone(),
            ViewsProjection::default(),
            poll,
            gate.clone(),
        );
        let correlator = Correlator::new(config.incidents.clone(), Some(analyst.clone()), inbox);
        let incidents_waiting = correlator.waiting();
        let (incidents_task, incidents_lag) =
            runner::spawn_gated(writer.clone(), correlator, poll, gate.clone());
        let mut projections = vec![
            ("incidents", incidents_lag),
            ("alerts", alerts_lag),
            ("views", views_lag),
        ];
        let mut projection_tasks = vec![incidents_task, alerts_task, views_task];
        if config.alerts.digest_period_s > 0 {
            let (task, lag) = runner::spawn_gated(
                writer.clone(),
                crate::projections::digest::DigestProjection::new(config.alerts.digest_period_s),
                poll,
                gate.clone(),
            );
            projections.push(("digest", lag));
            projection_tasks.push(task);
        }
        let mut dynamo = None;
        if config.dynamodb.enabled || config.eventbridge.enabled {
            let sdk = crate::aws::sdk_config(&config.aws).await;
            if config.dynamodb.enabled {
                let sink = DynamoSink::new(&sdk, &config.dynamodb.table);
                let projection = DynamoProjection { sink: sink.clone() };
                let (task, lag) =
                    runner::spawn_gated(writer.clone(), projection, poll, gate.clone());
                projections.push(("dynamodb", lag));
                projection_tasks.push(task);
                dynamo = Some(sink);
            }
            if config.eventbridge.enabled {
                let projection = EventBridgeProjection::new(&sdk, config.eventbridge.clone());
                let (task, lag) =
                    runner::spawn_gated(writer.clone(), projection, poll, gate.clone());
                projections.push(("eventbridge", lag));
                projection_tasks.push(task);
            }
        }
        for (name, lag, task) in
            crate::projections::notify::spawn_all(&writer, &config.notify, poll, &gate)
        {
            projections.push((name, lag));
            projection_tasks.push(task);
        }
        let triage = Arc::new(crate::alerts::triage::Triage::start(writer.clone())?);
        let maintenance = Arc::new(crate::maintenance::log::MaintenanceLog::new(writer.clone()));
        Ok(Node {
            config,
            analyst,
            incidents_waiting,
            ports,
            dynamo,
            projections,
            projection_tasks,
            router,
            ingestor,
            writer,
            triage,
            maintenance,
            supervisor,
            retention,
            packing,
            membership,
        })
    }

    /// What the HTTP handlers need from this node.
    pub fn app_state(&self) -> AppState {
        AppState {
            ingestor: self.ingestor.clone(),
            analyst: self.analyst.clone(),
            projections: self.projections.clone(),
            dynamo: self.dynamo.clone(),
            triage: self.triage.clone(),
            maintenance: self.maintenance.clone(),
            writer: self.writer.clone(),
            config: Arc::new(self.config.clone()),
            incidents_waiting: self.incidents_waiting.clone(),
            ports: self.ports.clone(),
        }
    }

    /// Run one retention pass now, as if the wall clock read `now_ms` (the periodic task runs
    /// the same pass); returns the number of events removed.
    pub async fn retain_as_of(&self, now_ms: i64) -> Result<usize, StoreError> {
        retention_pass(&self.writer, retention_policy(&self.config), now_ms).await
    }

    /// Stop the actors (passivating leaves snapshots) and wait for them.
    pub async fn shutdown(self) {
        self.retention.abort();
        self.packing.abort();
        if let Some((_, task)) = &self.membership {
            task.abort();
        }
        for task in &self.projection_tasks {
            task.abort();
        }
        self.analyst.stop();
        self.supervisor
            .drain_children_and_wait(Some(Duration::from_secs(10)))
            .await;
        self.supervisor.stop(None);
        // Snapshots from post_stop go through the writer; one durable no-op write behind them
        // guarantees they are flushed before we return.
        let _ = self.writer.write(Vec::new()).await;
        if let Some((membership, _)) = &self.membership {
            if let Err(e) = membership.leave().await {
                tracing::warn!(error = %e, "leaving the cluster; the leases will lapse instead");
            }
        }
    }
}

/// The analyst pool: the configured model (Bedrock or OpenAI-compatible), else the rules.
async fn start_analyst(config: &Config, inbox: Inbox) -> Result<AnalystPool, NodeError> {
    let cfg = config.analyst.clone();
    let template = crate::analyst::template::PromptTemplate::from_config(&cfg.prompt_file)?;
    let model = Model::for_backend(&cfg, &config.aws)
        .await
        .map_err(|e| NodeError::Model(e.to_string()))?;
    let analyst = Arc::new(
        Analyst::new(
            cfg,
            model,
            Duration::from_millis(200),
            crate::clock::now_ms(),
        )
        .with_template(template),
    );
    let deliver: Deliver = Arc::new(move |job, outcome| {
        inbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((job, outcome));
    });
    AnalystPool::start(analyst, deliver, Duration::from_millis(20))
        .await
        .map_err(|e| NodeError::Actors(e.to_string()))
}

fn retention_policy(config: &Config) -> RetentionPolicy {
    let day_ms = 24 * 3600 * 1000;
    RetentionPolicy {
        raw_max_age_ms: config.store.raw_retention_hours as i64 * 3600 * 1000,
        events_max_age_ms: (config.store.event_retention_days > 0)
            .then(|| config.store.event_retention_days as i64 * day_ms),
    }
}

fn run_retention(
    writer: Writer,
    config: &Config,
    gate: runner::Gate,
) -> impl std::future::Future<Output = ()> {
    let policy = retention_policy(config);
    let every = Duration::from_secs(config.store.retention_interval_s);
    async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            if !gate() {
                continue;
            }
            match retention_pass(&writer, policy, crate::clock::now_ms()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "retention compacted old events"),
                Err(e) => tracing::warn!(error = %e, "retention failed"),
            }
        }
    }
}

/// Pack raw samples older than `store.pack_after_s` into segments, every `pack_interval_s`.
fn run_packing(
    store: Arc<dyn EventStore>,
    config: &Config,
) -> impl std::future::Future<Output = ()> {
    let every = Duration::from_secs(config.store.pack_interval_s);
    let after_ms = config.store.pack_after_s.saturating_mul(1000) as i64;
    async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let store = store.clone();
            let cut = crate::clock::now_ms().saturating_sub(after_ms);
            match tokio::task::spawn_blocking(move || store.archive(cut)).await {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => {
                    crate::metrics::global().store_packed_samples.inc_by(n);
                    tracing::info!(packed = n, "raw samples packed into segments");
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "packing raw samples failed"),
                Err(e) => tracing::warn!(error = %e, "packing task failed"),
            }
        }
    }
}

/// One retention pass as of `now_ms`: plan the removals off the async workers (old raw
/// samples and events, and view entries past their time to live), write them.
async fn retention_pass(
    writer: &Writer,
    policy: RetentionPolicy,
    now_ms: i64,
) -> Result<usize, StoreError> {
    let store = writer.store().clone();
    let ops = tokio::task::spawn_blocking(move || {
        retention::plan(store.as_ref(), policy, now_ms, 100_000)
    })
    .await
    .map_err(|e| StoreError::Engine(format!("retention task: {e}")))??;
    let store = writer.store().clone();
    let expired = tokio::task::spawn_blocking(move || {
        let mut ops = Vec::new();
        for view in [views::INSIGHTS_VIEW, views::ALERTS_VIEW] {
            ops.extend(views::expired(store.as_ref(), view, now_ms, 100_000)?);
        }
        Ok::<_, StoreError>(ops)
    })
    .await
    .map_err(|e| StoreError::Engine(format!("view expiry task: {e}")))??;
    let ops: Vec<_> = ops.into_iter().chain(expired).collect();
    let n = ops.len();
    if n > 0 {
        writer.write(ops).await?;
    }
    Ok(n)
}
