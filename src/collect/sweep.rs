//! One sweep of the fabric through rdma-core's infiniband-diags, as the subnet manager's host
//! sees it, with at most one fabric discovery:
//!
//! 1. `ibnetdiscover --cache F` discovers the fabric once (every `discover_every` sweeps, and
//!    at once when a link changed) and gives the switches and the node GUID of every CA port;
//!    the cache file gives every port's enabled and supported widths and speeds (`ibnd_cache`);
//! 2. `iblinkinfo --line --load-cache F`: every port's state, width, speed and peer;
//! 3. `ibqueryerrors --load-cache F`, split by node type (switches, CAs, routers when there
//!    are any) and by kind (`--counters`: the 64-bit data counters; every error threshold at
//!    0: each non-zero error counter), so the PMA queries run in parallel processes, at most
//!    `max_clients` at once (ibsim, like a real SM host's umad, serves few clients).
//!
//! Each port then gets the norm of its peers (`norm`) and, with an expected topology, its
//! mismatches with it (`topology`); detection judges both.
//!
//! A sample is stamped with the time its data counters were read (the line of output that
//! carried them), so counter rates stay right when a sweep is long. A tool that times out or
//! fails loses only its own part (those ports are still reported, with their link), and the
//! loss is counted; it never drops the sweep. A port whose counters cannot be read, or whose
//! LinkDownedCounter rose, means the cached links are out of date: the sweep discovers again
//! and reads the links once more.
//!
//! The tools inherit the environment, so `LD_PRELOAD=libumad2sim.so SIM_HOST=<node>` attaches
//! them to a simulated fabric.

use super::assemble::{self, Naming, SweepReadings};
use super::ibnd_cache::{self, PortCaps};
use super::norm;
use super::parse::{self, ByPort, PortCounters, PortKey};
use super::tool::{self, Output, Timeouts, ToolError};
use super::topology::{self, Topology};
use crate::sample::port::{LinkState, NodeType};
use crate::sample::{Counter, Sample};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;
use tokio::process::Command;
use tokio::sync::Semaphore;

/// How the tools reach the fabric.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `-C <ca>`: the local HCA to use (default: the first).
    pub ca: Option<String>,
    /// `-P <port>`: its port.
    pub port: Option<u8>,
    /// Tools running at once.
    pub max_clients: usize,
    /// How long each tool may take.
    pub timeouts: Timeouts,
    /// Discover the fabric every this many sweeps (1: every sweep), and sooner on a change.
    pub discover_every: u32,
    /// Extra environment of the tools (e.g. what attaches them to ibsim); they inherit the
    /// process's own.
    pub env: Vec<(String, String)>,
    /// The expected topology every sweep is held against.
    pub topology: Option<Arc<Topology>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error("discovery cache: {0}")]
    Cache(std::io::Error),
}

/// What a collector remembers between sweeps: the names it gave, the discovery cache, and
/// the link counters that tell a link changed.
#[derive(Debug, Default)]
pub struct Memory {
    pub naming: Naming,
    cache: Option<tempfile::TempDir>,
    discovered: bool,
    since_discovery: u32,
    link_downed: HashMap<(u64, u8), u64>,
    /// Every port's enabled and supported widths and speeds, from the last discovery's cache.
    caps: HashMap<(u64, u8), PortCaps>,
}

/// A sweep's samples and figures.
#[derive(Debug, Default)]
pub struct Swept {
    pub samples: Vec<Sample>,
    /// Linked ports whose counters could not be read (reported without counters).
    pub counter_errors: usize,
    /// Lines of iblinkinfo that did not parse.
    pub skipped_lines: usize,
    /// Tool runs that did not answer within their timeout (each lost only its own part).
    pub tool_timeouts: usize,
    /// Tool runs that failed otherwise.
    pub tool_failures: usize,
    /// Fabric discoveries this sweep made (0, 1, or 2 when a link changed under the cache).
    pub discoveries: usize,
    pub seconds: f64,
}

/// One counter query: node type and kind.
#[derive(Debug, Clone, Copy)]
struct Query {
    nodes: &'static str,
    errors: bool,
}

impl Tools {
    fn command(&self, program: &str, args: &[String]) -> Command {
        let mut cmd = Command::new(program);
        if let Some(ca) = &self.ca {
            cmd.arg("-C").arg(ca);
        }
        if let Some(port) = self.port {
            cmd.arg("-P").arg(port.to_string());
        }
        cmd.args(args);
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }

    async fn run(
        &self,
        sem: &Semaphore,
        program: &str,
        args: &[String],
    ) -> Result<Output, ToolError> {
        let _permit = sem.acquire().await.expect("the semaphore is never closed");
        let label = format!("{program} {}", args.join(" "));
        // ibqueryerrors exits 1 when it found counters beyond the thresholds: with thresholds
        // at 0 that is any error at all, and its report is what we asked for.
        let ok_codes: &[i32] = if program == "ibqueryerrors" {
            &[1]
        } else {
            &[]
        };
        tool::run(
            self.command(program, args),
            label.trim(),
            self.timeouts.of(program),
            ok_codes,
        )
        .await
    }

    /// Discover the fabric into the cache; the switches, routers and CA port GUIDs it found.
    async fn discover(
        &self,
        sem: &Semaphore,
        memory: &mut Memory,
        swept: &mut Swept,
    ) -> Result<bool, SweepError> {
        let dir = match memory.cache.take() {
            Some(d) => d,
            None => tempfile::tempdir().map_err(SweepError::Cache)?,
        };
        let path = dir.path().join("fabric.cache");
        let _ = std::fs::remove_file(&path);
        let args = ["--cache".to_string(), path.display().to_string()];
        swept.discoveries += 1;
        let out = self.run(sem, "ibnetdiscover", &args).await;
        memory.cache = Some(dir);
        match out {
            Ok(out) => {
                let text = out.text();
                let (switches, routers) = parse::ibnetdiscover_nodes(&text);
                memory.naming.switches = switches;
                memory.naming.routers = routers;
                memory.naming.node_of_port = parse::ibnetdiscover_port_guids(&text);
                memory.discovered = path.exists();
                match std::fs::read(&path).map(|b| ibnd_cache::read(&b)) {
                    Ok(Ok(caps)) => memory.caps = caps,
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "enabled widths and speeds not read; keeping the last")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "fabric cache not readable; enabled widths and speeds kept from the last discovery")
                    }
                }
                memory.since_discovery = 0;
                Ok(true)
            }
            Err(e) => {
                // The last discovery serves; without one, each tool discovers for itself.
                count(swept, &e);
                tracing::warn!(error = %e, "fabric not discovered; using the last discovery");
                memory.discovered = memory.discovered && path.exists();
                Ok(false)
            }
        }
    }

    fn cache_args(memory: &Memory) -> Vec<String> {
        match (&memory.cache, memory.discovered) {
            (Some(dir), true) => vec![
                "--load-cache".into(),
                dir.path().join("fabric.cache").display().to_string(),
            ],
            _ => Vec::new(),
        }
    }

    async fn links(
        &self,
        sem: &Semaphore,
        memory: &Memory,
    ) -> Result<(Vec<parse::LinkLine>, usize, i64), ToolError> {
        let mut args = vec!["--line".to_string()];
        args.extend(Self::cache_args(memory));
        let out = self.run(sem, "iblinkinfo", &args).await?;
        let (ports, skipped) = parse::iblinkinfo(&out.text());
        Ok((ports, skipped, crate::clock::now_ms()))
    }

    /// Sweep the fabric once.
    pub async fn sweep(&self, memory: &mut Memory) -> Result<Swept, SweepError> {
        let started = Instant::now();
        let sem = Arc::new(Semaphore::new(self.max_clients.max(1)));
        let mut swept = Swept::default();
        let due = !memory.discovered || memory.since_discovery + 1 >= self.discover_every.max(1);
        let mut fresh = false;
        if due {
            fresh = self.discover(&sem, memory, &mut swept).await?;
        } else {
            memory.since_discovery += 1;
        }
        let thresholds = tempfile::NamedTempFile::new().map_err(SweepError::Cache)?;
        std::fs::write(thresholds.path(), parse::zero_thresholds()).map_err(SweepError::Cache)?;
        let mut kinds = vec!["--switch", "--ca"];
        if memory.naming.routers {
            kinds.push("--router");
        }
        let queries: Vec<Query> = kinds
            .iter()
            .flat_map(|n| [false, true].map(|errors| Query { nodes: n, errors }))
            .collect();
        let cache = Self::cache_args(memory);
        let counter_runs = queries.iter().map(|q| {
            let mut args = cache.clone();
            args.push(q.nodes.to_string());
            if q.errors {
                args.push("--threshold-file".into());
                args.push(thresholds.path().display().to_string());
            } else {
                args.push("--counters".into());
            }
            let sem = sem.clone();
            async move { (*q, self.run(&sem, "ibqueryerrors", &args).await) }
        });
        let (links, counter_outs) = tokio::join!(
            self.links(&sem, memory),
            futures_util::future::join_all(counter_runs)
        );
        let node_of_port = memory.naming.node_of_port.clone();
        // Data counters (with the time each line was read) and error counters by node GUID;
        // `None` for a node type whose query was lost.
        let mut data: HashMap<PortKey, (PortCounters, i64)> = HashMap::new();
        let mut errors: ByPort = HashMap::new();
        let mut lost: Vec<(&'static str, bool)> = Vec::new();
        for (q, out) in counter_outs {
            match out {
                Ok(out) => {
                    for (at, line) in &out.lines {
                        let Some(((guid, port), c)) = parse::ibqueryerrors_line(line) else {
                            continue;
                        };
                        let key = (node_of_port.get(&guid).copied().unwrap_or(guid), port);
                        if q.errors {
                            errors.entry(key).or_default().extend(c);
                        } else {
                            let e = data.entry(key).or_insert_with(|| (BTreeMap::new(), *at));
                            e.0.extend(c);
                        }
                    }
                }
                Err(e) => {
                    count(&mut swept, &e);
                    tracing::warn!(error = %e, "counters of these nodes not read this sweep");
                    lost.push((q.nodes, q.errors));
                }
            }
        }
        let (mut ports, mut skipped, mut links_at) = match links {
            Ok(l) => l,
            Err(e) => {
                count(&mut swept, &e);
                return Err(e.into());
            }
        };
        // A link changed under the cache: discover again, and read the links once more.
        if !fresh
            && self.link_changed(memory, &ports, &data, &errors, &lost)
            && self.discover(&sem, memory, &mut swept).await?
        {
            match self.links(&sem, memory).await {
                Ok(l) => (ports, skipped, links_at) = l,
                Err(e) => count(&mut swept, &e),
            }
        }
        remember_link_downed(memory, &errors);
        let switches = &memory.naming.switches;
        let mut counters: ByPort = HashMap::new();
        let mut times: HashMap<(u64, u8), i64> = HashMap::new();
        for p in &ports {
            if p.port_num == 0 || p.state == Some(LinkState::Down) || p.state.is_none() {
                continue;
            }
            let node = node_of_port
                .get(&p.node_guid)
                .copied()
                .unwrap_or(p.node_guid);
            let key = (node, p.port_num);
            let nodes = if switches.contains(&node) {
                "--switch"
            } else {
                "--ca"
            };
            let Some((mut c, at)) = data.get(&key).cloned() else {
                // A linked port that ibqueryerrors could not read: reported without counters.
                swept.counter_errors += 1;
                continue;
            };
            if lost.contains(&(nodes, true)) {
                // Its errors were not read: an absent error counter would read as zero.
                swept.counter_errors += 1;
            } else {
                for e in parse::ERROR_COUNTERS {
                    c.insert(e, 0);
                }
                if let Some(errs) = errors.get(&key) {
                    c.extend(errs.iter().map(|(k, v)| (*k, *v)));
                }
            }
            counters.insert(key, c);
            times.insert(key, at);
        }
        let readings = SweepReadings {
            ports,
            switches: switches.clone(),
            counters,
            times,
            node_of_port,
        };
        swept.samples = assemble::samples(&readings, &memory.caps, &mut memory.naming, links_at);
        norm::annotate(&mut swept.samples);
        if let Some(t) = &self.topology {
            topology::check(t, &mut swept.samples);
        }
        swept.skipped_lines = skipped;
        swept.seconds = started.elapsed().as_secs_f64();
        Ok(swept)
    }

    /// Whether the links the cache holds are out of date: a linked port whose counters are
    /// missing (its node is gone or unreachable) or whose LinkDownedCounter rose.
    fn link_changed(
        &self,
        memory: &Memory,
        ports: &[parse::LinkLine],
        data: &HashMap<PortKey, (PortCounters, i64)>,
        errors: &ByPort,
        lost: &[(&'static str, bool)],
    ) -> bool {
        if !lost.is_empty() {
            // A lost query says nothing of the links.
            return false;
        }
        let rose = errors.iter().any(|(k, c)| {
            let now = c.get(&Counter::LinkDownedCounter).copied().unwrap_or(0);
            now > memory.link_downed.get(k).copied().unwrap_or(0)
        });
        let unreachable = ports.iter().any(|p| {
            let node = memory
                .naming
                .node_of_port
                .get(&p.node_guid)
                .copied()
                .unwrap_or(p.node_guid);
            p.port_num != 0
                && p.state == Some(LinkState::Active)
                && !data.contains_key(&(node, p.port_num))
        });
        rose || unreachable
    }
}

fn remember_link_downed(memory: &mut Memory, errors: &ByPort) {
    memory.link_downed = errors
        .iter()
        .filter_map(|(k, c)| c.get(&Counter::LinkDownedCounter).map(|v| (*k, *v)))
        .collect();
}

fn count(swept: &mut Swept, e: &ToolError) {
    if e.timed_out() {
        swept.tool_timeouts += 1;
    } else {
        swept.tool_failures += 1;
    }
}

/// How many samples of a sweep are switch ports (for the printed figures).
pub fn switch_ports(samples: &[Sample]) -> usize {
    samples
        .iter()
        .filter(|s| s.port.node_type == Some(NodeType::Switch))
        .count()
}
