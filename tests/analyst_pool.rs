//! The analyst pool (ractor factory): every anomaly gets an insight, overflow is answered by
//! the rules backend with `queue_full`, critical work goes first, and a fault storm is
//! batched into few model calls.

mod common;

use ibsight::analyst::bedrock::{local_sdk_config, BedrockModel};
use ibsight::analyst::insight::InsightSource;
use ibsight::analyst::job::AnomalyJob;
use ibsight::analyst::pool::{AnalystPool, Deliver};
use ibsight::analyst::service::{Analyst, InsightOutcome};
use ibsight::analyst::{AnalystConfig, Backend};
use ibsight::cli::bench::fake_bedrock::FakeBedrock;
use ibsight::detect::rules::Severity;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Delivered = Arc<Mutex<Vec<(AnomalyJob, InsightOutcome)>>>;

async fn pool(
    cfg: AnalystConfig,
    latency: Duration,
    linger: Duration,
) -> (FakeBedrock, AnalystPool, Delivered) {
    let fake = FakeBedrock::start(None).await.expect("fake");
    fake.set_latency(latency);
    let model = BedrockModel::from_sdk_config(
        &local_sdk_config(&fake.url()),
        &cfg.model_id,
        Duration::from_secs(5),
    );
    let analyst = Arc::new(Analyst::new(
        cfg,
        Some(model.into()),
        Duration::from_millis(5),
        ibsight::clock::now_ms(),
    ));
    let delivered: Delivered = Arc::default();
    let sink = delivered.clone();
    let deliver: Deliver =
        Arc::new(move |job, outcome| sink.lock().expect("lock").push((job, outcome)));
    let pool = AnalystPool::start(analyst, deliver, linger)
        .await
        .expect("pool");
    (fake, pool, delivered)
}

use common::latency_job as job;

async fn wait_for(delivered: &Delivered, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while delivered.lock().expect("lock").len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} insights delivered",
            delivered.lock().expect("lock").len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_its_overflow_with_the_rules() {
    let cfg = AnalystConfig {
        backend: Backend::Bedrock,
        workers: 1,
        queue_capacity: 2,
        batch_max: 1,
        cache_window_s: 0,
        ..AnalystConfig::default()
    };
    let (_fake, pool, delivered) = pool(cfg, Duration::from_millis(300), Duration::ZERO).await;
    for seq in 1..=8 {
        pool.submit(job(&format!("s{seq}"), seq, Severity::Warning));
    }
    wait_for(&delivered, 8).await;
    let got = delivered.lock().expect("lock").clone();
    let full: Vec<_> = got
        .iter()
        .filter(|(_, o)| o.reason.as_deref() == Some("queue_full"))
        .collect();
    assert!(
        !full.is_empty(),
        "some overflow expected: {:?}",
        got.iter()
            .map(|(_, o)| o.reason.clone())
            .collect::<Vec<_>>()
    );
    assert!(full
        .iter()
        .all(|(_, o)| o.source == InsightSource::Fallback));
    assert!(got.iter().any(|(_, o)| o.source == InsightSource::Ai));
    let mut seqs: Vec<u64> = got.iter().map(|(j, _)| j.anomaly_seq).collect();
    seqs.sort();
    assert_eq!(
        seqs,
        (1..=8).collect::<Vec<_>>(),
        "every anomaly got exactly one insight"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn critical_anomalies_jump_the_queue() {
    let cfg = AnalystConfig {
        backend: Backend::Bedrock,
        workers: 1,
        queue_capacity: 100,
        batch_max: 1,
        cache_window_s: 0,
        ..AnalystConfig::default()
    };
    let (_fake, pool, delivered) = pool(cfg, Duration::from_millis(100), Duration::ZERO).await;
    for seq in 1..=4 {
        pool.submit(job(&format!("w{seq}"), seq, Severity::Warning));
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    pool.submit(job("crit", 99, Severity::Critical));
    wait_for(&delivered, 5).await;
    let order: Vec<u64> = delivered
        .lock()
        .expect("lock")
        .iter()
        .map(|(j, _)| j.anomaly_seq)
        .collect();
    let crit = order
        .iter()
        .position(|s| *s == 99)
        .expect("critical delivered");
    assert!(
        crit <= 1,
        "critical served right after the in-flight job: {order:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_storm_is_batched_into_few_calls() {
    let cfg = AnalystConfig {
        backend: Backend::Bedrock,
        workers: 2,
        batch_max: 8,
        cache_window_s: 0,
        ..AnalystConfig::default()
    };
    let (fake, pool, delivered) =
        pool(cfg, Duration::from_millis(20), Duration::from_millis(50)).await;
    for seq in 1..=32 {
        pool.submit(job(&format!("leaf7/p{seq}"), seq, Severity::Major));
    }
    wait_for(&delivered, 32).await;
    let got = delivered.lock().expect("lock").clone();
    assert!(
        got.iter().all(|(_, o)| o.source == InsightSource::Ai),
        "{:?}",
        got.iter()
            .map(|(_, o)| (o.source, o.reason.clone()))
            .collect::<Vec<_>>()
    );
    assert!(
        fake.received().len() <= 6,
        "{} calls for 32 anomalies",
        fake.received().len()
    );
    assert!(got.iter().all(|(_, o)| o.batch_size > 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_would_wait_past_its_deadline_for_the_rate_limiter_is_answered_by_the_rules() {
    // One request a minute and a 1 s call: the second batch would wait ~60 s for the limiter,
    // far past its 2 s deadline (and a watchdog would have killed the worker, losing its job).
    let cfg = AnalystConfig {
        backend: Backend::Bedrock,
        workers: 1,
        batch_max: 1,
        cache_window_s: 0,
        max_rpm: 1,
        timeout_s: 1,
        max_retries: 0,
        ..AnalystConfig::default()
    };
    assert_eq!(cfg.batch_deadline(), Duration::from_secs(2));
    let (_fake, pool, delivered) = pool(cfg, Duration::from_millis(10), Duration::ZERO).await;
    for seq in 1..=3 {
        pool.submit(job(&format!("r{seq}"), seq, Severity::Warning));
    }
    wait_for(&delivered, 3).await;
    let reasons: Vec<Option<String>> = delivered
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, o)| o.reason.clone())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| r.is_none()).count(),
        1,
        "one model answer: {reasons:?}"
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|r| r.as_deref() == Some("rate_limited"))
            .count(),
        2,
        "{reasons:?}"
    );
    assert_eq!(pool.queue_depth(), 0);
    assert!(!pool.analyst.breaker_open());
}
