//! Membership and shard leases in PostgreSQL: each node heartbeats its row in `members`, renews
//! the leases it holds, lets go of those a live member now wins (after flushing their
//! streams), and claims those it wins once they lapse or are released. The decisions are in
//! `lease.rs`; this is the loop and its SQL. Every time is the database's clock.

use super::lease::{self, Held, PROJECTIONS};
use super::{ClusterConfig, Member};
use crate::events::pg_store::{LOCK_HOLDERS_SQL, LOCK_SELF_SQL};
use deadpool_postgres::Pool;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Who holds each shard (and the projections), as the lease table says, with the live members.
#[derive(Debug, Default, Clone)]
pub struct Routes {
    /// Holder of each shard's lease (an index into `members`), `None`: no live holder.
    pub holders: Vec<Option<usize>>,
    pub projections: Option<usize>,
    /// Members holding a lease or heartbeating.
    pub members: Vec<Member>,
    /// Ids of the live members (heartbeat younger than the lease time to live).
    pub live: Vec<String>,
}

impl Routes {
    pub fn holder(&self, shard: u32) -> Option<&Member> {
        let i = (*self.holders.get(shard as usize)?)?;
        self.members.get(i)
    }

    /// Leases held by each member id.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for i in self.holders.iter().flatten() {
            *out.entry(self.members[*i].id.clone()).or_default() += 1;
        }
        out
    }
}

pub type SharedRoutes = Arc<RwLock<Routes>>;

/// What a node does when leases come and go (the router's actors, the writer's caches).
pub trait Handover: Send + Sync + 'static {
    /// Leases taken by another node while this one held them: stop their work at once.
    fn lost(&self, leases: &[String]);
    /// Leases to give up: stop their work and make what it wrote durable before returning.
    fn release<'a>(&'a self, leases: &'a [String])
        -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
    /// Leases just taken: whatever was cached about their streams is stale.
    fn gained(&self, leases: &[String]);
}

pub struct Membership {
    pool: Pool,
    cfg: ClusterConfig,
    held: Arc<Held>,
    routes: SharedRoutes,
    hooks: Arc<dyn Handover>,
}

#[derive(Debug, thiserror::Error)]
#[error("cluster membership: {0}")]
pub struct MembershipError(String);

fn err(e: impl std::fmt::Display) -> MembershipError {
    MembershipError(e.to_string())
}

fn db(e: tokio_postgres::Error) -> MembershipError {
    match e.as_db_error() {
        Some(d) => err(d.message()),
        None => err(e),
    }
}

impl Membership {
    pub fn new(
        pool: Pool,
        cfg: ClusterConfig,
        held: Arc<Held>,
        routes: SharedRoutes,
        hooks: Arc<dyn Handover>,
    ) -> Membership {
        Membership {
            pool,
            cfg,
            held,
            routes,
            hooks,
        }
    }

    /// Tick until the task is aborted; a failed tick is retried on the next one (the leases
    /// this node cannot renew lapse, and its writes are fenced). While leases it should hold
    /// are still held by a node that stopped renewing them, it ticks five times as often, so
    /// it takes them within a fifth of a heartbeat of their lapse, not a whole one.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let heartbeat = Duration::from_millis(this.cfg.heartbeat_ms);
            loop {
                let started = std::time::Instant::now();
                let waiting = match this.tick().await {
                    Ok(waiting) => waiting,
                    Err(e) => {
                        tracing::warn!(error = %e, "membership tick failed");
                        false
                    }
                };
                let took = started.elapsed();
                if took > heartbeat {
                    tracing::warn!(?took, "a membership tick took longer than the heartbeat");
                }
                let period = if waiting { heartbeat / 5 } else { heartbeat };
                tokio::time::sleep(period.saturating_sub(took)).await;
            }
        })
    }

    /// Leave the cluster (a clean shutdown, after the node's work is flushed): give up every
    /// lease and the member row, so the others take over at their next tick instead of
    /// waiting for the leases to lapse.
    pub async fn leave(&self) -> Result<(), MembershipError> {
        let mut client = self.pool.get().await.map_err(err)?;
        let me = self.cfg.node_id.as_str();
        // Its own writes in flight commit first (the fencing lock, taken exclusively).
        let tx = client.transaction().await.map_err(db)?;
        tx.execute(LOCK_SELF_SQL, &[&me]).await.map_err(db)?;
        tx.execute(
            "UPDATE leases SET holder = '', expires_at = clock_timestamp() WHERE holder = $1",
            &[&me],
        )
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        client
            .execute("DELETE FROM members WHERE node_id = $1", &[&me])
            .await
            .map_err(db)?;
        for name in self.held.names() {
            self.held.lose(&name);
        }
        Ok(())
    }

    /// Heartbeat, renew, release, claim, then read the routes. Returns whether leases this
    /// node should hold could not be taken yet (their holder's have not lapsed).
    pub async fn tick(&self) -> Result<bool, MembershipError> {
        let me = self.cfg.node_id.as_str();
        let ttl = self.cfg.lease_ttl_s as f64;
        let mut client = self.pool.get().await.map_err(err)?;
        client
            .execute(
                "INSERT INTO members (node_id, url, heartbeat_at) VALUES ($1, $2, clock_timestamp()) \
                 ON CONFLICT (node_id) DO UPDATE SET url = $2, heartbeat_at = clock_timestamp()",
                &[&me, &self.cfg.advertise_url],
            )
            .await
            .map_err(db)?;
        let mine: Vec<String> = self.held.names().into_iter().collect();
        let rows = client
            .query(
                "UPDATE leases SET expires_at = clock_timestamp() + make_interval(secs => $2) \
                 WHERE holder = $1 AND name = ANY($3) RETURNING name, epoch",
                &[&me, &ttl, &mine],
            )
            .await
            .map_err(db)?;
        let renewed: BTreeMap<String, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let lost = self.held.reconcile(&renewed);
        if !lost.is_empty() {
            tracing::warn!(
                leases = lost.len(),
                "leases lost to another node; their work stops"
            );
            crate::metrics::global()
                .cluster_leases_lost
                .inc_by(lost.len() as u64);
            self.hooks.lost(&lost);
        }
        let live: Vec<String> = client
            .query(
                "SELECT node_id FROM members \
                 WHERE heartbeat_at > clock_timestamp() - make_interval(secs => $1) ORDER BY node_id",
                &[&ttl],
            )
            .await
            .map_err(db)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let plan = lease::plan(me, &live, &self.held.names(), self.cfg.shards);
        if !plan.release.is_empty() {
            for name in &plan.release {
                self.held.start_release(name);
            }
            self.hooks.release(&plan.release).await;
            // Its own writes in flight under them commit first.
            let tx = client.transaction().await.map_err(db)?;
            tx.execute(LOCK_SELF_SQL, &[&me]).await.map_err(db)?;
            tx.execute(
                "UPDATE leases SET holder = '', expires_at = clock_timestamp() \
                 WHERE holder = $1 AND name = ANY($2)",
                &[&me, &plan.release],
            )
            .await
            .map_err(db)?;
            tx.commit().await.map_err(db)?;
            for name in &plan.release {
                self.held.lose(name);
            }
            tracing::info!(
                leases = plan.release.len(),
                "released leases to their new owner"
            );
        }
        let mut waiting = false;
        if !plan.claim.is_empty() {
            // A lease is taken when it lapsed, was released, or is held under this node's id
            // by an earlier run of it; every take bumps the epoch, which fences the old holder.
            // The old holders' writes in flight commit first; after this commits, theirs are
            // refused (the fencing lock, taken exclusively until the takeover commits).
            let tx = client.transaction().await.map_err(db)?;
            tx.execute(LOCK_HOLDERS_SQL, &[&plan.claim, &me])
                .await
                .map_err(db)?;
            let rows = tx
                .query(
                    "INSERT INTO leases (name, holder, epoch, expires_at) \
                     SELECT n, $1, 1, clock_timestamp() + make_interval(secs => $2) FROM UNNEST($3::text[]) n \
                     ON CONFLICT (name) DO UPDATE SET holder = $1, epoch = leases.epoch + 1, \
                       expires_at = EXCLUDED.expires_at \
                     WHERE leases.expires_at < clock_timestamp() OR leases.holder = '' OR leases.holder = $1 \
                     RETURNING name, epoch",
                    &[&me, &ttl, &plan.claim],
                )
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            let gained: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
            waiting = gained.len() < plan.claim.len();
            if !gained.is_empty() {
                self.hooks.gained(&gained);
                for r in &rows {
                    self.held.gain(r.get(0), r.get(1));
                }
                tracing::info!(leases = gained.len(), "took leases");
            }
        }
        let rows = client
            .query(
                "SELECT l.name, l.holder, m.url FROM leases l JOIN members m ON m.node_id = l.holder \
                 WHERE l.expires_at > clock_timestamp() AND l.holder <> ''",
                &[],
            )
            .await
            .map_err(db)?;
        let mut routes = Routes {
            holders: vec![None; self.cfg.shards as usize],
            live,
            ..Routes::default()
        };
        for r in &rows {
            let (name, holder, url): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            let i = match routes.members.iter().position(|m| m.id == holder) {
                Some(i) => i,
                None => {
                    routes.members.push(Member { id: holder, url });
                    routes.members.len() - 1
                }
            };
            match lease::shard_of_lease(&name) {
                Some(shard) if (shard as usize) < routes.holders.len() => {
                    routes.holders[shard as usize] = Some(i)
                }
                None if name == PROJECTIONS => routes.projections = Some(i),
                _ => {}
            }
        }
        *self.routes.write().unwrap_or_else(|p| p.into_inner()) = routes;
        Ok(waiting)
    }
}
