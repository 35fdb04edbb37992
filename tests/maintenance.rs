//! Maintenance windows through `ibsight serve`, its HTTP API and the on-call's command line:
//! a window on a switch mutes the incident of a cable of it (both ends, switch and HCA): it is
//! recorded, says it is in maintenance, is answered by the rules with no model call (a local
//! Bedrock-protocol server counts the calls) and raises no alert; the same fault on a switch
//! outside the window is asked of the model and alerts; a window ended early stops muting,
//! and the incident still open from it is asked again and alerts; writes need a write token. `ibsight incidents` and `ibsight alerts` read the results.

mod common;

use common::{binary, now_ms, post_json};
use ibsight::cli::bench::fake_bedrock::FakeBedrock;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

const INGEST: &str = "ingest-token-0123456789";
const READ: &str = "read-token-0123456789ab";
const WRITE: &str = "write-token-0123456789a";

/// One end of a cable with its identity, whose receive buffer overruns from `t` (critical).
fn end(desc: &str, guid: u64, port: u8, peer: (&str, u64, u8), t: i64) -> Vec<Value> {
    let switch = !desc.starts_with("node");
    (0..2)
        .map(|i| {
            json!({
                "stream_id": format!("{desc}/p{port}"),
                "timestamp": t + i * 100,
                "node_guid": format!("0x{guid:016x}"),
                "port_num": port,
                "node_desc": desc,
                "node_type": if switch { "switch" } else { "ca" },
                "peer": {"node_guid": format!("0x{:016x}", peer.1), "port_num": peer.2,
                         "node_desc": peer.0},
                "utilization": 50,
                "counters": {"ExcessiveBufferOverrunErrors": i},
            })
        })
        .collect()
}

/// Both ends of the cable switch `sw` port `p` to host `host` port 1 fail at `t`.
fn cable(sw: (&str, u64), p: u8, host: (&str, u64), t: i64) -> Value {
    let mut samples = end(sw.0, sw.1, p, (host.0, host.1, 1), t);
    samples.extend(end(host.0, host.1, 1, (sw.0, sw.1, p), t));
    json!({ "samples": samples })
}

/// `ibsight ARGS… --target URL`, its exit status, stdout and stderr.
fn cli(url: &str, args: &[&str], token: Option<&str>) -> (bool, String, String) {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .args(["--target", url])
        .env_remove("IBSIGHT_TOKEN");
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    let out = cmd.output().expect("run ibsight");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cli_json(url: &str, args: &[&str], token: &str) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, out, err) = cli(url, &all, Some(token));
    assert!(ok, "ibsight {args:?} failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

/// The incident (from `ibsight incidents --state all --json`) that holds `stream`, once it has
/// its insight.
async fn analysed_incident(url: &str, stream: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = cli_json(url, &["incidents", "--state", "all"], READ);
        let found = v["incidents"].as_array().and_then(|is| {
            is.iter()
                .find(|i| {
                    i["ports"]
                        .as_array()
                        .is_some_and(|ps| ps.iter().any(|p| p["stream_id"] == stream))
                        && !i["source"].is_null()
                })
                .cloned()
        });
        if let Some(i) = found {
            return i;
        }
        assert!(
            Instant::now() < deadline,
            "no analysed incident with {stream}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The incident insights in the log, by incident id.
async fn insights(client: &reqwest::Client, url: &str) -> Vec<Value> {
    let (_, page) = common::get_json(
        client,
        &format!("{url}/v1/streams/%23incidents/events?limit=1000"),
        Some(READ),
    )
    .await;
    page["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e["event_type"] == "InsightGenerated")
        .map(|e| e["payload"].clone())
        .collect()
}

fn alerted_incidents(url: &str) -> Vec<String> {
    cli_json(url, &["alerts"], READ)["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|a| a["incident_id"].as_str().map(String::from))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_mutes_its_ports_incidents_and_nothing_else() {
    // The local model answers risk 72; alerts start at 70 here, so its answers alert.
    let fake = FakeBedrock::start(None).await.expect("fake bedrock");
    let dir = tempfile::tempdir().expect("tempdir");
    let (ingest, read, write) = (
        format!("[\"{INGEST}\"]"),
        format!("[\"{READ}\"]"),
        format!("[\"{WRITE}\"]"),
    );
    let srv = common::serve_with_bedrock(
        dir.path(),
        &fake.url(),
        &[
            ("IBSIGHT_AUTH__INGEST_TOKENS", &ingest),
            ("IBSIGHT_AUTH__READ_TOKENS", &read),
            ("IBSIGHT_AUTH__TRIAGE_TOKENS", &write),
            ("IBSIGHT_ALERTS__THRESHOLD", "70"),
        ],
    );
    let url = srv.url.clone();
    let client = reqwest::Client::new();

    // Writes need a write token: none, or a read token, is refused and writes nothing.
    let add = [
        "maintenance",
        "add",
        "--node",
        "leaf07",
        "--for",
        "2h",
        "--reason",
        "recabling leaf07",
    ];
    let (ok, _, err) = cli(&url, &add, None);
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, _, err) = cli(&url, &add, Some(READ));
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, _, err) = cli(
        &url,
        &[
            "maintenance",
            "add",
            "--node",
            "0xnothex",
            "--for",
            "2h",
            "--reason",
            "x",
        ],
        Some(WRITE),
    );
    assert!(
        !ok && err.contains("nodes[0]") && err.contains("0xnothex"),
        "{err}"
    );
    assert_eq!(
        cli_json(&url, &["maintenance", "list", "--state", "all"], READ)["windows"],
        json!([])
    );

    let window = cli_json(&url, &add, WRITE);
    assert_eq!(window["window_id"], "mw-1", "{window}");
    assert_eq!(window["status"], "active");
    let (ok, table, _) = cli(&url, &["maintenance", "list"], Some(READ));
    assert!(
        ok && table.contains("mw-1") && table.contains("active") && table.contains("leaf07"),
        "{table}"
    );

    // A cable of leaf07 fails on both ends, and a cable of leaf08 the same way.
    let t = now_ms() - 60_000;
    let leaf07 = ("leaf07", 0x0002_c903_0000_0107_u64);
    let leaf08 = ("leaf08", 0x0002_c903_0000_0108_u64);
    for body in [
        cable(leaf07, 3, ("node001", 0x0002_c903_0000_0a01), t),
        cable(leaf08, 5, ("node002", 0x0002_c903_0000_0a02), t),
    ] {
        let (status, answer) = post_json(&client, &url, &body, Some(INGEST)).await;
        assert_eq!(status, 202, "{answer}");
    }
    let muted = analysed_incident(&url, "node001/p1").await;
    let loud = analysed_incident(&url, "node002/p1").await;
    assert_eq!(muted["scope"], "link", "{muted}");
    assert_eq!(muted["maintenance"], json!(["mw-1"]), "{muted}");
    assert_eq!(muted["opened_in_maintenance"], json!(["mw-1"]), "{muted}");
    assert_eq!(muted["source"], "rules", "{muted}");
    assert_eq!(loud["maintenance"], json!([]), "{loud}");
    assert_eq!(loud["source"], "ai", "{loud}");
    let by_id = |id: &Value| {
        let id = id.clone();
        move |i: &&Value| i["anomaly_id"] == id
    };
    let all = insights(&client, &url).await;
    let muted_insight = all.iter().find(by_id(&muted["id"])).expect("muted insight");
    assert_eq!(muted_insight["reason"], "maintenance", "{muted_insight}");
    assert!(muted_insight["model_id"].is_null());
    // The model was asked about leaf08's cable only.
    let asked: Vec<String> = fake.received().iter().map(|r| r.body.to_string()).collect();
    assert!(!asked.is_empty());
    assert!(
        asked
            .iter()
            .all(|b| !b.contains("leaf07") && !b.contains("node001")),
        "{asked:?}"
    );

    // Only the loud incident alerts.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !alerted_incidents(&url).contains(&loud["id"].as_str().unwrap().to_string()) {
        assert!(Instant::now() < deadline, "leaf08's incident never alerted");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let alerted = alerted_incidents(&url);
    assert!(
        !alerted.contains(&muted["id"].as_str().unwrap().to_string()),
        "{alerted:?}"
    );
    let (ok, table, _) = cli(&url, &["incidents", "--state", "all"], Some(READ));
    assert!(
        ok && table.contains("maintenance") && table.contains("alerted"),
        "{table}"
    );

    // The window ends early; the next fault on leaf07 is asked of the model and alerts.
    let ended = cli_json(&url, &["maintenance", "end", "mw-1"], WRITE);
    assert_eq!(ended["status"], "ended", "{ended}");
    assert_eq!(ended["ended_early"], true);
    assert_eq!(
        cli_json(&url, &["maintenance", "list"], READ)["windows"],
        json!([])
    );
    let (ok, _, err) = cli(&url, &["maintenance", "end", "mw-9"], Some(WRITE));
    assert!(!ok && err.contains("404"), "{err}");
    // leaf07's cable is still broken: out of its window, it is asked of the model and alerts.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let asked = insights(&client, &url).await;
        let again = asked
            .iter()
            .filter(by_id(&muted["id"]))
            .any(|i| i["source"] == "ai");
        if again && alerted_incidents(&url).contains(&muted["id"].as_str().unwrap().to_string()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "leaf07's open incident was not asked again after its window: {asked:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let t2 = now_ms() - 30_000;
    let body = cable(leaf07, 9, ("node003", 0x0002_c903_0000_0a03), t2);
    let (status, answer) = post_json(&client, &url, &body, Some(INGEST)).await;
    assert_eq!(status, 202, "{answer}");
    let after = analysed_incident(&url, "node003/p1").await;
    assert_eq!(after["maintenance"], json!([]), "{after}");
    assert_eq!(after["source"], "ai", "{after}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !alerted_incidents(&url).contains(&after["id"].as_str().unwrap().to_string()) {
        assert!(
            Instant::now() < deadline,
            "leaf07's fault after the window never alerted"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    fake.stop();

    // Replay: the views rebuilt from the log (windows and incidents are events) equal the
    // live ones, the maintenance fields of the incidents included.
    srv.terminate();
    let out = Command::new(binary())
        .args(["replay", "projection", "views", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("replay");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("\"differing\":0"), "{report}");
}
