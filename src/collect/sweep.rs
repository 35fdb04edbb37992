//! One sweep of the fabric through rdma-core's infiniband-diags, as the subnet manager's host
//! sees it: `ibswitches` and `iblinkinfo --line` (every port's state, width, speed and peer,
//! one process each), then `perfquery` per node for PortCounters and PortCountersExtended
//! (`-l` over all ports of a switch in one process; one process per HCA port). At most
//! `max_clients` tools run at once: ibsim, like a real SM host's umad, serves few clients.
//!
//! The tools are run as child processes and inherit the environment, so
//! `LD_PRELOAD=libumad2sim.so SIM_HOST=<node>` attaches them to a simulated fabric. A tool
//! that fails on one node costs that node its counters (the ports are still reported, with
//! their link) and is counted; it never drops the sweep.

use super::assemble::{self, Naming, SweepReadings};
use super::parse;
use crate::sample::port::{LinkState, NodeType};
use crate::sample::{Counter, Sample};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
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
    /// One tool run may take this long.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("{tool}: {reason}")]
    Tool { tool: String, reason: String },
}

/// A sweep's samples and figures.
#[derive(Debug, Default)]
pub struct Swept {
    pub samples: Vec<Sample>,
    /// Nodes whose counters could not be read (their ports are reported without counters).
    pub counter_errors: usize,
    /// Lines of iblinkinfo that did not parse.
    pub skipped_lines: usize,
    pub seconds: f64,
}

impl Tools {
    async fn run(
        &self,
        sem: &Semaphore,
        program: &str,
        args: &[String],
    ) -> Result<String, SweepError> {
        let _permit = sem.acquire().await.expect("the semaphore is never closed");
        let mut cmd = Command::new(program);
        if let Some(ca) = &self.ca {
            cmd.arg("-C").arg(ca);
        }
        if let Some(port) = self.port {
            cmd.arg("-P").arg(port.to_string());
        }
        cmd.args(args).kill_on_drop(true);
        let err = |reason: String| SweepError::Tool {
            tool: format!("{program} {}", args.join(" ")),
            reason,
        };
        let out = tokio::time::timeout(self.timeout, cmd.output())
            .await
            .map_err(|_| err(format!("no answer within {:?}", self.timeout)))?
            .map_err(|e| err(e.to_string()))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(err(format!("{}: {}", out.status, stderr.trim())));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Sweep the fabric once; samples are stamped `timestamp_ms`.
    pub async fn sweep(&self, naming: &mut Naming, timestamp_ms: i64) -> Result<Swept, SweepError> {
        let started = Instant::now();
        let sem = Arc::new(Semaphore::new(self.max_clients.max(1)));
        let line = ["--line".to_string()];
        let (switches, links) = tokio::join!(
            self.run(&sem, "ibswitches", &[]),
            self.run(&sem, "iblinkinfo", &line),
        );
        let switches = parse::ibswitches(&switches?);
        let (ports, skipped_lines) = parse::iblinkinfo(&links?);
        // What to ask perfquery: each switch once (all its ports), each HCA port alone.
        let mut queries: Vec<(u64, Vec<String>, Option<u8>)> = Vec::new();
        let mut seen_switches = std::collections::HashSet::new();
        for p in &ports {
            if switches.contains(&p.node_guid) {
                if seen_switches.insert(p.node_guid) {
                    queries.push((
                        p.node_guid,
                        vec!["-l".into(), p.lid.to_string(), "255".into()],
                        None,
                    ));
                }
            } else if p.lid != 0 && p.state != Some(LinkState::Down) {
                queries.push((
                    p.node_guid,
                    vec![p.lid.to_string(), p.port_num.to_string()],
                    Some(p.port_num),
                ));
            }
        }
        let runs = queries.iter().map(|(guid, args, port)| {
            let sem = sem.clone();
            async move {
                let mut ext_args = vec!["-x".to_string()];
                ext_args.extend(args.iter().cloned());
                let (basic, ext) = tokio::join!(
                    self.run(&sem, "perfquery", args),
                    self.run(&sem, "perfquery", &ext_args),
                );
                (*guid, *port, basic, ext)
            }
        });
        let results = futures_util::future::join_all(runs).await;
        let mut counters: HashMap<(u64, u8), BTreeMap<Counter, u64>> = HashMap::new();
        let mut counter_errors = 0;
        for (guid, only_port, basic, ext) in results {
            let (basic, ext) = match (basic, ext) {
                (Ok(b), Ok(e)) => (b, e),
                (b, e) => {
                    counter_errors += 1;
                    for err in [b.err(), e.err()].into_iter().flatten() {
                        tracing::warn!(node_guid = guid, error = %err, "counters not read");
                    }
                    continue;
                }
            };
            let mut by_port = parse::perfquery(&basic);
            // The extended (64-bit) data counters replace the basic 32-bit ones.
            for (port, ext) in parse::perfquery(&ext) {
                by_port.entry(port).or_default().extend(ext);
            }
            for (port, c) in by_port {
                let port = only_port.unwrap_or(port);
                counters.insert((guid, port), c);
            }
        }
        let readings = SweepReadings {
            ports,
            switches,
            counters,
        };
        let samples = assemble::samples(&readings, naming, timestamp_ms);
        Ok(Swept {
            samples,
            counter_errors,
            skipped_lines,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// How many samples of a sweep are switch ports (for the printed figures).
pub fn switch_ports(samples: &[Sample]) -> usize {
    samples
        .iter()
        .filter(|s| s.port.node_type == Some(NodeType::Switch))
        .count()
}
