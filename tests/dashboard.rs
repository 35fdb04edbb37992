//! The dashboard in headless Chromium (Debian's, driven by playwright-core; `scripts/test`
//! installs both). `ibsight serve` is fed the switch-storm scenario up to the middle of the
//! storm; the page must fill its insights table, show a new insight after the next poll
//! without reloading, colour the faulty switch, render a stream's chart and events, fit a
//! narrow screen, and say "stale" when the server dies. The insights come from the local
//! Bedrock-protocol server, unsure of itself (confidence 0.5): the page marks them low
//! confidence with the rules' risk. The screenshot is kept as a test artifact in
//! `target/tmp/dashboard.png`.

mod common;

use common::{get_json, post_json, Server};
use ibsight::sim::generator::Simulator;
use ibsight::sim::scenario::Scenario;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const FAULTY_SWITCH: &str = "leaf02";

fn chromium() -> PathBuf {
    let bin = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&bin).exists(),
        "Chromium not found at {bin}: run scripts/test, which installs it"
    );
    PathBuf::from(bin)
}

fn harness_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dashboard");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is not installed in {}: run scripts/test, which installs it",
        dir.display()
    );
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_insights_the_fabric_and_a_stream_and_polls_without_reloading() {
    let chromium = chromium();
    let harness = harness_dir();
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = ibsight::cli::bench::fake_bedrock::FakeBedrock::start(None)
        .await
        .expect("fake bedrock");
    fake.set_answer(72, 0.5);
    let srv = common::serve_with_bedrock(
        dir.path(),
        &fake.url(),
        &[("IBSIGHT_ALERTS__DIGEST_PERIOD_S", "2")],
    );
    let client = reqwest::Client::new();

    // The storm starts at 30 s; stop at 50 s, while leaf02's anomalies are open.
    let scenario = Scenario::load("switch-storm").expect("scenario");
    let mut sim = Simulator::new(scenario, common::now_ms() - 60_000);
    for _ in 0..50 {
        let samples = sim.next_tick().expect("a tick");
        let body = json!({ "samples": samples.iter().map(|s| s.to_json()).collect::<Vec<_>>() });
        let (status, answer) = post_json(&client, &srv.url, &body, None).await;
        assert_eq!(status, 202, "{answer}");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let faulty_stream = loop {
        let (_, fabric) = get_json(&client, &format!("{}/v1/fabric", srv.url), None).await;
        let leaf = fabric["switches"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["switch"] == FAULTY_SWITCH))
            .cloned()
            .unwrap_or(Value::Null);
        if leaf["worst_risk"].as_u64() >= Some(60) {
            break leaf["at_risk"][0]["stream_id"]
                .as_str()
                .expect("a port at risk")
                .to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the storm never showed: {fabric}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let pid = srv.child.id().to_string();
    let mut cmd = std::process::Command::new("node");
    cmd.current_dir(&harness)
        .arg("check.mjs")
        .arg(&srv.url)
        .arg(&screenshot)
        .args([FAULTY_SWITCH, &faulty_stream, &pid])
        .env("CHROMIUM_BIN", &chromium);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{stdout}");
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("json");
    assert_eq!(seen["ok"], true, "{seen}");
    assert!(seen["insight_rows"].as_u64() > Some(0), "{seen}");
    assert!(
        seen["rows_kept"].as_u64() > Some(0),
        "old rows stay visible when stale: {seen}"
    );
    assert!(
        seen["low_confidence_mark"]
            .as_str()
            .is_some_and(|m| m.contains("rules risk")),
        "{seen}"
    );
    assert!(screenshot.exists());
    eprintln!("dashboard screenshot: {} ({seen})", screenshot.display());
}

/// With read tokens configured, the page asks for one once and keeps it for the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_asks_for_a_read_token_once() {
    let chromium = chromium();
    let harness = harness_dir();
    let dir = tempfile::tempdir().expect("tempdir");
    let token = "read-token-of-the-dashboard-test";
    let tokens = format!("[\"{token}\"]");
    let srv = Server::start(
        dir.path(),
        &[("IBSIGHT_AUTH__READ_TOKENS", tokens.as_str())],
    );
    let client = reqwest::Client::new();
    let t = common::now_ms() - 10_000;
    let body = json!({ "samples": common::spike("tok/p1", t) });
    assert_eq!(post_json(&client, &srv.url, &body, None).await.0, 202);
    let (status, _) = get_json(&client, &format!("{}/v1/insights/recent", srv.url), None).await;
    assert_eq!(status, 401, "reads need the token");
    let url = srv.url.clone();
    let mut cmd = std::process::Command::new("node");
    cmd.current_dir(&harness)
        .args(["token.mjs", &url, token])
        .env("CHROMIUM_BIN", &chromium);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run node");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    srv.terminate();
}
