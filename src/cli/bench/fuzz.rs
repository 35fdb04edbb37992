//! `ibsight bench fuzz --cases N`: robustness of `POST /v1/metrics`. Feeds generated and
//! mutated bodies (random bytes, deep nesting, huge numbers, NaN-like strings, unicode ids,
//! duplicate keys, wrong types, 10,000-sample edges, mutations of valid bodies, valid bodies)
//! through the real HTTP router of an in-process node, one at a time, and checks each answer:
//! no panic; a refusal is a 4xx whose body names a field or the body; nothing of a refused
//! request is written; an accepted request counts every one of its samples. Deterministic per
//! seed. Prints one JSON line of figures; exits non-zero on the first violation, showing the
//! case.

use crate::config::Config;
use crate::node::Node;
use crate::sim::Rng;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Instant;
use tower::ServiceExt;

#[derive(Debug, clap::Args)]
pub struct FuzzBenchArgs {
    /// Number of cases.
    #[arg(long, default_value_t = 10_000)]
    pub cases: u64,
    /// Seed of the case generator (same seed, same cases).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub fn run(args: FuzzBenchArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(fuzz(args))
}

/// One generated request.
struct Case {
    kind: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
}

async fn fuzz(args: FuzzBenchArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = Config::default();
    config.server.data_dir = dir.path().to_path_buf();
    let node = Node::start(config).await?;
    let app = crate::api::router(node.app_state());
    // What ingest stored (other parts of the node append too: insights, alerts).
    let stored = || {
        let m = crate::metrics::global();
        m.ingest_samples.get("accepted") + m.ingest_samples.get("late")
    };
    let mut rng = Rng::new(args.seed);
    let mut by_status: BTreeMap<u16, u64> = BTreeMap::new();
    let mut by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
    let started = Instant::now();
    for i in 0..args.cases {
        let case = generate(&mut rng, i);
        *by_kind.entry(case.kind).or_default() += 1;
        let before = stored();
        let request = Request::post("/v1/metrics")
            .header("content-type", case.content_type)
            .body(Body::from(case.body.clone()))?;
        let response = app.clone().oneshot(request).await?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        *by_status.entry(status.as_u16()).or_default() += 1;
        if let Err(why) = check(&case, status, &bytes, before, stored()) {
            let shown: String = String::from_utf8_lossy(&case.body)
                .chars()
                .take(400)
                .collect();
            anyhow::bail!(
                "case {i} of seed {} ({}) violates the contract: {why}\nbody: {shown}\nanswer {status}: {}",
                args.seed,
                case.kind,
                String::from_utf8_lossy(&bytes)
            );
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "bench": "fuzz",
            "cases": args.cases,
            "seed": args.seed,
            "seconds": (seconds * 10.0).round() / 10.0,
            "cases_per_s": (args.cases as f64 / seconds).round(),
            "by_status": by_status,
            "by_kind": by_kind,
            "violations": 0,
        })
    );
    node.shutdown().await;
    Ok(())
}

/// The contract every answer keeps.
fn check(
    case: &Case,
    status: StatusCode,
    bytes: &[u8],
    before: u64,
    after: u64,
) -> Result<(), String> {
    // `before` and `after`: samples ingest had stored before and after the request.
    let answer: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("answer is not JSON: {e}"))?;
    if status == StatusCode::ACCEPTED {
        let posted: Value = serde_json::from_slice(&case.body)
            .map_err(|e| format!("202 for a body that does not parse: {e}"))?;
        let n = posted["samples"].as_array().map_or(0, Vec::len) as u64;
        let counted = ["accepted", "duplicates", "late"]
            .iter()
            .map(|k| answer[k].as_u64().unwrap_or(0))
            .sum::<u64>();
        if counted != n {
            return Err(format!("{n} samples posted, {counted} counted"));
        }
        let stored =
            answer["accepted"].as_u64().unwrap_or(0) + answer["late"].as_u64().unwrap_or(0);
        if stored != after - before {
            return Err(format!(
                "{stored} stored by the answer, {} by the ingest counters",
                after - before
            ));
        }
        return Ok(());
    }
    if !status.is_client_error() {
        return Err(format!("status {status} is neither 202 nor a 4xx"));
    }
    if after != before {
        return Err(format!(
            "refused, yet {} samples were stored",
            after - before
        ));
    }
    let message = answer["message"].as_str().unwrap_or("");
    match answer["error"].as_str() {
        Some("invalid_batch") => {
            let details = answer["details"]
                .as_array()
                .ok_or("invalid_batch without details")?;
            if details.is_empty() {
                return Err("invalid_batch with no detail".into());
            }
            for d in details {
                let named = d["field"].is_string() && d["index"].is_u64();
                if !named || d["message"].as_str().is_none_or(str::is_empty) {
                    return Err(format!("a detail names no field: {d}"));
                }
            }
            Ok(())
        }
        Some("bad_request") if message.starts_with("body:") || message.contains(':') => Ok(()),
        Some("invalid_json") | Some("payload_too_large")
            if message.contains("body") || message.contains("samples") =>
        {
            Ok(())
        }
        Some("unsupported_media_type") if !message.is_empty() => Ok(()),
        other => Err(format!(
            "refusal {other:?} names neither a field nor the body: {message:?}"
        )),
    }
}

fn pick<'a, T>(rng: &mut Rng, items: &'a [T]) -> &'a T {
    &items[(rng.next_u64() % items.len() as u64) as usize]
}

fn now_ms() -> i64 {
    crate::clock::now_ms()
}

/// A valid sample of one of a few streams (so repeats, late data and duplicates happen).
fn valid_sample(rng: &mut Rng) -> Value {
    let stream = format!("fz{:02}/p{}", rng.next_u64() % 20, rng.next_u64() % 4);
    let ts = now_ms() - (rng.next_u64() % 3_600_000) as i64;
    let mut s = json!({"stream_id": stream, "timestamp": ts});
    if rng.unit() < 0.8 {
        s["utilization"] = json!((rng.unit() * 100.0 * 100.0).round() / 100.0);
    }
    if rng.unit() < 0.8 {
        s["latency_p99"] = json!(1.0 + rng.unit() * 10.0);
    }
    if rng.unit() < 0.3 {
        s["counters"] = json!({"SymbolErrorCounter": rng.next_u64() % 65_536, "PortXmitWait": rng.next_u64() % 1_000_000});
    }
    if rng.unit() < 0.2 {
        s["labels"] = json!({"rack": format!("r{}", rng.next_u64() % 10)});
    }
    s
}

fn valid_body(rng: &mut Rng, n: usize) -> Value {
    json!({"samples": (0..n).map(|_| valid_sample(rng)).collect::<Vec<_>>()})
}

const ODD_VALUES: &[&str] = &[
    "1e999",
    "-1e999",
    "1e300",
    "-0",
    "0.0000000000000000000000001",
    "123456789012345678901234567890",
    "18446744073709551616",
    "-9223372036854775809",
    "\"NaN\"",
    "\"Infinity\"",
    "\"-inf\"",
    "\"1e3\"",
    "null",
    "true",
    "[]",
    "{}",
    "[1,2]",
    "\"\"",
    "\"\\u0000\"",
    "1.5",
    "-1",
];

const ODD_IDS: &[&str] = &[
    "",
    " ",
    "a b",
    "a\\u0000b",
    "ключ/порт",
    "🔥/p1",
    "\\u202eevil",
    "..",
    "../../etc/passwd",
    "a#b",
    "%2F",
    "a/b/c/d/e/f/g",
    "\\n",
    "x\\ty",
];

const FIELDS: &[&str] = &crate::sample::validate::KNOWN_FIELDS;

fn generate(rng: &mut Rng, i: u64) -> Case {
    let json = "application/json";
    let kind = rng.next_u64() % 1000;
    let (kind, body): (&'static str, Vec<u8>) = match kind {
        0..=99 => {
            let n = (rng.next_u64() % 2048) as usize;
            (
                "random_bytes",
                (0..n).map(|_| rng.next_u64() as u8).collect(),
            )
        }
        100..=149 => {
            let depth = (rng.next_u64() % 20_000) as usize + 1;
            let open = pick(rng, &["[", "{\"a\":", "{\"samples\":["]);
            let mut b = open.repeat(depth);
            b.push_str(&"]".repeat(depth));
            ("deep_nesting", b.into_bytes())
        }
        150..=299 => {
            let mut s = valid_sample(rng);
            let field = *pick(rng, FIELDS);
            let raw = *pick(rng, ODD_VALUES);
            s[field] = serde_json::from_str(raw).unwrap_or_else(|_| json!(raw));
            let mut text = json!({"samples": [s]}).to_string();
            // Numbers JSON cannot hold as f64 are spliced in raw.
            if raw.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
                text = text.replacen(
                    &format!("\"{field}\":{}", s[field]),
                    &format!("\"{field}\":{raw}"),
                    1,
                );
            }
            ("odd_value", text.into_bytes())
        }
        300..=399 => {
            let id = *pick(rng, ODD_IDS);
            let text = format!(
                "{{\"samples\":[{{\"stream_id\":\"{id}\",\"timestamp\":{},\"utilization\":5}}]}}",
                now_ms() - 1000
            );
            ("odd_id", text.into_bytes())
        }
        400..=479 => {
            let s = valid_sample(rng);
            let ts = s["timestamp"].clone();
            let text = match rng.next_u64() % 3 {
                0 => format!("{{\"samples\":[{s}],\"samples\":[{s}]}}"),
                1 => format!(
                    "{{\"samples\":[{{\"stream_id\":\"dup/p1\",\"timestamp\":{ts},\"timestamp\":{ts},\"utilization\":1}}]}}"
                ),
                _ => format!(
                    "{{\"samples\":[{{\"stream_id\":\"dup/p1\",\"stream_id\":\"dup/p2\",\"timestamp\":{ts},\"utilization\":1}}]}}"
                ),
            };
            ("duplicate_keys", text.into_bytes())
        }
        480..=599 => {
            let mut s = valid_sample(rng);
            let field = *pick(rng, FIELDS);
            s[field] = pick(
                rng,
                &[
                    json!("text"),
                    json!([1]),
                    json!({"a": 1}),
                    json!(true),
                    json!(null),
                ],
            )
            .clone();
            let top = match rng.next_u64() % 4 {
                0 => json!({"samples": s}),
                1 => json!([s]),
                2 => json!({"samples": [s], "extra": 1}),
                _ => json!({"samples": [s]}),
            };
            ("wrong_type", top.to_string().into_bytes())
        }
        600..=601 => {
            // The edges of a request's size: exactly the cap, one over, and over 8 MiB.
            let n = *pick(rng, &[10_000usize, 10_001]);
            let body = valid_body(rng, n);
            if i.is_multiple_of(7) {
                let pad = "x".repeat(9 << 20);
                (
                    "size_edge",
                    format!("{{\"pad\":\"{pad}\",\"samples\":[]}}").into_bytes(),
                )
            } else {
                ("size_edge", body.to_string().into_bytes())
            }
        }
        602..=969 => {
            let n = 1 + (rng.next_u64() % 5) as usize;
            let mut b = valid_body(rng, n).to_string().into_bytes();
            for _ in 0..1 + rng.next_u64() % 4 {
                if b.is_empty() {
                    break;
                }
                let at = (rng.next_u64() % b.len() as u64) as usize;
                match rng.next_u64() % 3 {
                    0 => b[at] = rng.next_u64() as u8,
                    1 => {
                        b.remove(at);
                    }
                    _ => b.insert(at, *pick(rng, b"{}[]\",:0-e.\\")),
                }
            }
            ("mutated", b)
        }
        _ => {
            let n = 1 + (rng.next_u64() % 20) as usize;
            ("valid", valid_body(rng, n).to_string().into_bytes())
        }
    };
    let content_type = if rng.unit() < 0.02 {
        *pick(
            rng,
            &[
                "text/plain",
                "",
                "application/jsonx",
                "application/json; charset=utf-8",
            ],
        )
    } else {
        json
    };
    Case {
        kind,
        content_type,
        body,
    }
}
