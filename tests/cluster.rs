//! Three `ibsight serve` processes on one PostgreSQL (scripts/test's throwaway server,
//! `PG_TEST_URL`). Shards are held through lease rows; a killed node's shards answer 503 only
//! until its leases lapse, then the survivors take them; a node paused past its lease cannot
//! commit when it resumes. Every check reads the shared log afterwards.

mod common;

use common::pg::{log_counts, pg_url};
use common::{now_ms, Server};
use ibsight::cluster::placement;
use ibsight::events::pg_store::PgStore;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const STREAMS: usize = 10_000;
const PER_REQUEST: usize = 500;
const TOKEN: &str = "node-token-of-the-test-cluster";

/// The tests here time failovers: one cluster at a time, so they do not share the 2 cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn stream(i: usize) -> String {
    format!("sw{:04}/p{:02}", i / 36, i % 36 + 1)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

struct Cluster {
    url: String,
    schema: String,
    ports: Vec<u16>,
    dirs: Vec<tempfile::TempDir>,
    ttl_s: u64,
}

impl Cluster {
    fn new(url: String, tag: &str, nodes: usize, ttl_s: u64) -> Cluster {
        Cluster {
            url,
            schema: format!("cl_{tag}_{}_{}", std::process::id(), now_ms() % 1_000_000),
            ports: (0..nodes).map(|_| free_port()).collect(),
            dirs: (0..nodes)
                .map(|_| tempfile::tempdir().expect("dir"))
                .collect(),
            ttl_s,
        }
    }

    fn id(i: usize) -> String {
        format!("n{}", i + 1)
    }

    fn start(&self, i: usize) -> Server {
        let config = self.dirs[i].path().join("node.toml");
        let text = format!(
            "[store]\nengine = \"postgres\"\nurl = {:?}\nschema = {:?}\n\n[cluster]\nnode_id = {:?}\n\
             node_token = {TOKEN:?}\nadvertise_url = \"http://127.0.0.1:{}\"\nlease_ttl_s = {}\n\
             heartbeat_ms = {}\n",
            self.url,
            self.schema,
            Cluster::id(i),
            self.ports[i],
            self.ttl_s,
            (self.ttl_s * 1000 / 10).max(100),
        );
        std::fs::write(&config, text).expect("write config");
        let config = config.to_str().expect("utf8").to_string();
        Server::start_full(
            &self.dirs[i].path().join("data"),
            &format!("127.0.0.1:{}", self.ports[i]),
            &["--config", &config],
            &[(
                "RUST_LOG",
                &std::env::var("CLUSTER_LOG").unwrap_or("warn".into()),
            )],
            &[],
        )
    }

    fn node_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[i])
    }

    /// Wait until every shard has a live holder and each of `live` nodes holds some.
    async fn settled(&self, client: &reqwest::Client, live: &[usize]) {
        let ok = common::eventually(Duration::from_secs(60), || async {
            let c = get(client, format!("{}/v1/cluster", self.node_url(live[0]))).await;
            c["shards_unheld"] == 0
                && live.iter().all(|i| {
                    c["members"].as_array().is_some_and(|ms| {
                        ms.iter().any(|m| {
                            m["id"] == Cluster::id(*i).as_str()
                                && m["live"] == true
                                && m["shards"].as_u64() > Some(0)
                        })
                    })
                })
        })
        .await;
        assert!(ok, "the cluster did not settle");
    }

    fn store(&self) -> PgStore {
        PgStore::open(&self.url, &self.schema, 2).expect("open the shared log")
    }
}

fn batch(range: std::ops::Range<usize>, t: i64) -> Value {
    json!({"samples": range
        .map(|i| json!({"stream_id": stream(i), "timestamp": t, "utilization": 50 + (i % 7)}))
        .collect::<Vec<_>>()})
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    common::post_json(client, url, body, None).await
}

async fn get(client: &reqwest::Client, url: impl AsRef<str>) -> Value {
    common::get_json(client, url.as_ref(), None).await.1
}

/// Post until 202; returns when the last 503 came, if one did.
async fn post_until_accepted(client: &reqwest::Client, url: &str, body: &Value) -> Option<Instant> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut refused = None;
    loop {
        let (status, answer) = post(client, url, body).await;
        match status {
            202 => return refused,
            503 => refused = Some(Instant::now()),
            other => panic!("unexpected answer {other}: {answer}"),
        }
        assert!(Instant::now() < deadline, "still refused: {answer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_postgres_take_over_a_killed_nodes_shards_within_the_lease() {
    let Some(url) = pg_url() else { return };
    let _one = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::new(url, "kill", 3, 10);
    let mut nodes: Vec<Option<Server>> = (0..3).map(|i| Some(cluster.start(i))).collect();
    let client = reqwest::Client::new();
    cluster.settled(&client, &[0, 1, 2]).await;
    // Ready as a load balancer asks it: the write path (the writer's probe) and a read work.
    for node in 0..3 {
        let (status, v) =
            common::get_json(&client, &format!("{}/readyz", cluster.node_url(node)), None).await;
        assert_eq!(status, 200, "node {node}: {v}");
    }
    let t = now_ms() - 60_000;

    // Two samples per stream, requests round-robin over the three nodes.
    let mut request = 0;
    for round in 0..2 {
        for start in (0..STREAMS).step_by(PER_REQUEST) {
            let body = batch(start..start + PER_REQUEST, t + round * 1000);
            post_until_accepted(&client, &cluster.node_url(request % 3), &body).await;
            request += 1;
        }
    }
    // Any node answers for any stream: the holder's live state, proxied.
    for i in (0..STREAMS).step_by(499) {
        for node in 0..3 {
            let url = format!("{}/v1/streams/{}", cluster.node_url(node), stream(i));
            let v = get(&client, &url).await;
            assert_eq!(v["last_seq"], 2, "{url}: {v}");
        }
    }

    // The victim is the node running the projections (the alert in flight fails over too).
    let ids: Vec<String> = (0..3).map(Cluster::id).collect();
    let victim_id = placement::owner_of(placement::DEFAULT_SHARDS, &ids).expect("a winner");
    let victim = ids.iter().position(|i| i == victim_id).expect("victim");
    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    // A critical anomaly: its incident raises one alert, once, whatever happens next.
    let critical = stream(7);
    let overrun = common::overrun(&critical, t + 1500);
    let extra = overrun.len();
    let body = json!({ "samples": overrun });
    post_until_accepted(&client, &cluster.node_url(survivors[0]), &body).await;

    // A third round on the survivors; the victim is SIGKILLed part-way.
    let mut failed: Vec<Value> = Vec::new();
    let mut killed_at = None;
    for (k, start) in (0..STREAMS).step_by(PER_REQUEST).enumerate() {
        if k == 3 {
            nodes[victim].take().expect("victim").kill9();
            killed_at = Some(Instant::now());
        }
        let body = batch(start..start + PER_REQUEST, t + 2000);
        let (status, answer) = post(&client, &cluster.node_url(survivors[k % 2]), &body).await;
        match status {
            202 => {}
            503 => failed.push(body),
            other => panic!("unexpected answer {other}: {answer}"),
        }
    }
    assert!(!failed.is_empty(), "requests after the kill hit its shards");
    // Retries of every refused request succeed, once its leases lapse (10 s) and a survivor
    // takes them.
    let killed_at = killed_at.expect("killed");
    let mut last_refusal = killed_at;
    for body in &failed {
        if let Some(refused) =
            post_until_accepted(&client, &cluster.node_url(survivors[0]), body).await
        {
            last_refusal = last_refusal.max(refused);
        }
    }
    let refusing = last_refusal - killed_at;
    eprintln!(
        "the killed node's shards answered 503 for {refusing:?}; all retries stored {:?} after the kill",
        killed_at.elapsed()
    );
    assert!(refusing < Duration::from_secs(15), "503s for {refusing:?}");
    cluster.settled(&client, &survivors).await;

    // The alert was raised exactly once, and every node lists it from the shared view.
    let listed = common::eventually(Duration::from_secs(30), || async {
        let v = get(
            &client,
            format!("{}/v1/alerts/recent", cluster.node_url(survivors[1])),
        )
        .await;
        v["alerts"].as_array().is_some_and(|a| a.len() == 1)
    })
    .await;
    assert!(listed, "one alert in the shared view");
    for s in nodes.iter_mut().filter_map(Option::take) {
        s.terminate();
    }

    // Every acknowledged sample is in the log exactly once, seqs continuous.
    let (samples, alerts) = log_counts(&cluster.store());
    assert_eq!(samples.len(), STREAMS);
    for (stream_id, n) in &samples {
        let expected = if *stream_id == critical { 3 + extra } else { 3 };
        assert_eq!(*n, expected, "{stream_id}: each sample once");
    }
    assert_eq!(alerts.len(), 1, "one AlertRaised in the log: {alerts:?}");
}

fn signal(server: &Server, sig: &str) {
    let pid = server.child.id().to_string();
    let ok = std::process::Command::new("kill")
        .args([sig, &pid])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// A node paused (SIGSTOP) past its lease, whose shards were taken over, cannot commit a single
/// event after it resumes: the requests that queued up for it while it slept (sent to the
/// internal endpoint, which never forwards) are all refused, and none of their samples is in
/// the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_paused_past_its_lease_cannot_commit_when_it_resumes() {
    let Some(url) = pg_url() else { return };
    let _one = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::new(url, "fence", 2, 3);
    let nodes: Vec<Server> = (0..2).map(|i| cluster.start(i)).collect();
    let client = reqwest::Client::new();
    cluster.settled(&client, &[0, 1]).await;
    let t = now_ms() - 60_000;
    // Streams n1 holds, with some history (live actors with state on n1).
    let ids: Vec<String> = (0..2).map(Cluster::id).collect();
    let n1_streams: Vec<String> = (0..2_000)
        .map(stream)
        .filter(|s| {
            placement::owner_of(placement::shard_of(s, placement::DEFAULT_SHARDS), &ids)
                == Some("n1")
        })
        .take(200)
        .collect();
    let body = |t: i64| {
        json!({"samples": n1_streams.iter()
            .map(|s| json!({"stream_id": s, "timestamp": t, "utilization": 40}))
            .collect::<Vec<_>>()})
    };
    post_until_accepted(&client, &cluster.node_url(0), &body(t)).await;

    signal(&nodes[0], "-STOP");
    // n2 takes every shard once n1's leases lapse.
    let taken = common::eventually(Duration::from_secs(30), || async {
        let c = get(&client, format!("{}/v1/cluster", cluster.node_url(1))).await;
        c["leases_held_here"].as_u64() == Some(u64::from(placement::DEFAULT_SHARDS) + 1)
    })
    .await;
    assert!(taken, "n2 took n1's leases");
    // n2 now writes n1's former streams.
    post_until_accepted(&client, &cluster.node_url(1), &body(t + 1000)).await;

    // Requests to n1's internal endpoint queue in the kernel while it is stopped.
    let queued: Vec<_> = (0..4)
        .map(|k| {
            let client = client.clone();
            let url = format!(
                "{}{}",
                cluster.node_url(0),
                ibsight::cluster::peers::INTERNAL_SAMPLES
            );
            let body = body(t + 2000 + k);
            tokio::spawn(async move {
                let r = client
                    .post(url)
                    .header(ibsight::cluster::peers::NODE_TOKEN_HEADER, TOKEN)
                    .json(&body)
                    .timeout(Duration::from_secs(60))
                    .send()
                    .await
                    .expect("n1 answers once resumed");
                r.status().as_u16()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&nodes[0], "-CONT");
    let mut statuses = Vec::new();
    for q in queued {
        statuses.push(q.await.expect("request task"));
    }
    for n in nodes {
        n.terminate();
    }
    // What n1 answered 202 for, it wrote under a lease it took again after resuming (a new
    // epoch, after n2 handed its shards back); with the old lease it could write nothing.
    // The log shows it: along every stream the lease epochs never go down, and only the
    // acknowledged samples are there.
    eprintln!("the resumed node answered {statuses:?}");
    let store = cluster.store();
    let (samples, _) = log_counts(&store);
    let stored = 2 + statuses.iter().filter(|s| **s == 202).count();
    for s in &n1_streams {
        assert_eq!(samples.get(s), Some(&stored), "{s}");
    }
    let rows = store.lease_epochs(&n1_streams).expect("epochs");
    let mut last: Option<(String, i64)> = None;
    for (stream_id, seq, epoch) in &rows {
        if let Some((s, e)) = &last {
            if s == stream_id {
                assert!(epoch >= e, "{stream_id} seq {seq}: epoch {epoch} after {e}");
            }
        }
        last = Some((stream_id.clone(), *epoch));
    }
    assert!(
        rows.len() >= n1_streams.len() * stored,
        "every sample has its epoch"
    );
    assert!(rows.iter().all(|r| r.2 > 0), "every event was fenced");
}

/// A node that joins takes the shards it wins by handover (their holders flush and release
/// them), and a node stopped with SIGTERM gives its leases back at once, without waiting for
/// them to lapse: each stream's history continues on its new holder, every sample once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_joining_and_leaving_hand_their_shards_over() {
    let Some(url) = pg_url() else { return };
    let _one = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::new(url, "handover", 3, 10);
    let mut nodes: Vec<Option<Server>> = vec![Some(cluster.start(0)), Some(cluster.start(1))];
    let client = reqwest::Client::new();
    cluster.settled(&client, &[0, 1]).await;
    let t = now_ms() - 60_000;
    let streams = 0..2_000;
    post_until_accepted(&client, &cluster.node_url(0), &batch(streams.clone(), t)).await;

    // n3 joins: it is live at its first heartbeat, and takes over what it wins.
    nodes.push(Some(cluster.start(2)));
    cluster.settled(&client, &[0, 1, 2]).await;
    post_until_accepted(
        &client,
        &cluster.node_url(2),
        &batch(streams.clone(), t + 1000),
    )
    .await;
    for i in streams.clone().step_by(97) {
        let v = get(
            &client,
            format!("{}/v1/streams/{}", cluster.node_url(2), stream(i)),
        )
        .await;
        assert_eq!(v["last_seq"], 2, "{}: history continues: {v}", stream(i));
    }

    // n1 stops cleanly: its leases are released on the way out.
    let stopped = Instant::now();
    nodes[0].take().expect("n1").terminate();
    let refused = post_until_accepted(
        &client,
        &cluster.node_url(1),
        &batch(streams.clone(), t + 2000),
    )
    .await;
    let window = refused.map_or(Duration::ZERO, |r| r - stopped);
    eprintln!("after n1's SIGTERM its shards answered 503 for {window:?}");
    assert!(
        window < Duration::from_secs(8),
        "a clean stop hands over before the 10 s lease lapses: {window:?}"
    );
    for s in nodes.iter_mut().filter_map(Option::take) {
        s.terminate();
    }
    let (samples, _) = log_counts(&cluster.store());
    assert_eq!(samples.len(), streams.len());
    assert!(samples.values().all(|n| *n == 3), "each sample once");
}
