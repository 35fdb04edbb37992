//! ibsight: an InfiniBand fabric monitor. Modules in layers, from the ground up (kept by
//! `tests/layers.rs`; a module imports only from the layers below its own):
//!
//! - `vocab`: the shared vocabulary (prediction types, insight sources, verdicts)
//! - `secret`: constant-time comparison of tokens; `errors`: an error with its causes
//! - `sample`: the validated telemetry sample and the validation of posted JSON
//! - `detect`: baselines and rules, pure functions over numbers
//! - `collect`: fabric sources: the rdma-core sweep (`collect`) and the sysfs reader (`agent`)
//! - `analyst`: insights for anomalies (Bedrock or rules), with quota, outage and cost control
//! - `events`: event types, codec, the `EventStore` trait, fjall and sled engines, group commit
//! - `maintenance`: planned work windows, which mute alerts and model calls for their ports
//! - `actors`: the supervision tree, stream actors and the router
//! - `incidents`: anomalies grouped into incidents (both ends of a cable, a whole switch)
//! - `alerts`: deduplicated critical alerts (pure decisions)
//! - `ingest`: from validated samples to durable events, with backpressure
//! - `projections`: read models fed by tailing the event log from a checkpoint
//! - `replay`: audits of the event log with today's code
//! - `api`: the HTTP API
//! - `aws`: the AWS provider chain with overrides, and JSON ⇄ DynamoDB items
//! - `metrics`: Prometheus counters and the text exposition
//! - `telemetry`: logs and OTLP traces, and the trace context carried across actors
//! - `cluster`: several nodes sharing the streams: placement, forwarding, peers
//! - `node`: one running node, assembled from config
//! - `config`: typed configuration with env overrides
//! - `cli`: the subcommands (`serve`, `events`, `bench`)
//! - `sim`: the fabric simulator, fault scenarios and their scoring
//! - `eval`: detection quality of a scenario through an in-process node
//! - `clock`: the only wall-clock reads
//! - `hash`: a stable hash for persisted and compared values

pub mod actors;
pub mod alerts;
pub mod analyst;
pub mod api;
pub mod aws;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod collect;
pub mod config;
pub mod detect;
pub mod errors;
pub mod eval;
pub mod events;
pub mod hash;
pub mod incidents;
pub mod ingest;
pub mod maintenance;
pub mod metrics;
pub mod node;
pub mod projections;
pub mod replay;
pub mod sample;
pub mod secret;
pub mod sim;
pub mod telemetry;
pub mod vocab;
