//! The PostgreSQL engine's own tests (the conformance suite runs on it too).

use super::*;
use crate::events::conformance::{append as sample, pg_test_url};
use crate::events::store::test_append;

mod batches;

/// A store on the test server, in a schema of this process; the first open of a name in the
/// process starts it empty (a schema left by an earlier process with the same id is dropped).
fn open(schema: &str) -> Option<PgStore> {
    static FRESH: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let url = pg_test_url()?;
    let schema = format!("{schema}_{}", std::process::id());
    let mut fresh = FRESH.lock().unwrap_or_else(|p| p.into_inner());
    if !fresh.contains(&schema) {
        let old = PgStore::open(&url, &schema, 1).expect("open postgres");
        let sql = format!("DROP SCHEMA {schema} CASCADE");
        old.run(move |pool| async move {
            let client = pool.get().await.expect("connection");
            client
                .batch_execute(&sql)
                .await
                .expect("drop the old schema");
        });
        fresh.push(schema.clone());
    }
    Some(PgStore::open(&url, &schema, 4).expect("open postgres"))
}

/// Given two nodes appending to one log at once, when a third tails it by offset, then it
/// sees every offset, in order, with no gap that fills in later.
#[test]
fn a_reader_tailing_by_offset_never_skips_a_late_commit() {
    let Some(a) = open("tail") else { return };
    let b = open("tail").expect("second node");
    let reader = open("tail").expect("reader");
    let writers: Vec<_> = [a, b]
        .into_iter()
        .enumerate()
        .map(|(n, store)| {
            std::thread::spawn(move || {
                for seq in 1..=200u64 {
                    // Raw samples go into batches, the placeholder events stay rows.
                    let ops: Vec<_> = (0..5)
                        .map(|k| match k {
                            0 => test_append(&format!("w{n}-{k}"), seq),
                            _ => sample(&format!("w{n}-{k}"), seq),
                        })
                        .collect();
                    store.write(&ops).expect("append");
                }
            })
        })
        .collect();
    let mut seen = 0u64;
    while seen < 2000 {
        for e in reader.read_from(seen + 1, 10_000).expect("tail") {
            assert_eq!(e.offset, seen + 1, "the tail skipped an offset");
            seen = e.offset;
        }
    }
    for w in writers {
        w.join().expect("writer");
    }
    assert_eq!(reader.last_offset(), 2000);
}

/// Given a transaction that took its offsets and is still open (held open by hand, with the
/// writer's own statements), when a later one commits first, then a tailer reads nothing past
/// the open one's offsets until it commits, and then reads both, in offset order.
#[test]
fn commits_that_finish_out_of_order_are_never_skipped() {
    let Some(a) = open("order") else { return };
    let b = open("order").expect("second writer");
    let reader = open("order").expect("reader");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pool = a.new_pool(2).expect("pool");
    let appends: Vec<_> = (1..=3)
        .map(|seq| match sample("early", seq) {
            WriteOp::Append(e) => e,
            _ => unreachable!("an append"),
        })
        .collect();
    // The writer's own statements, by hand: the transaction id, the offsets, the batch.
    let held = rt.block_on(async {
        let client = pool.get().await.expect("connection");
        client.batch_execute("BEGIN").await.expect("begin");
        client.query(write::XID_SQL, &[]).await.expect("xid");
        let row = client
            .query_one(write::OFFSETS_SQL, &[&3i64])
            .await
            .expect("offsets");
        let mut offs: Vec<i64> = row.get(0);
        offs.sort();
        let placed: Vec<batch::Placed<'_>> = appends
            .iter()
            .zip(&offs)
            .map(|(e, o)| batch::Placed {
                event: e,
                offset: *o as u64,
                epoch: 0,
            })
            .collect();
        let split = batch::split(&placed).expect("pack");
        let b = &split.batches[0];
        client
            .execute(
                "INSERT INTO batches (first_off, last_off, part, epochs, data) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[&b.first_off, &b.last_off, &b.part, &b.epochs, &b.data],
            )
            .await
            .expect("batch");
        client
            .execute(write::MAX_SPAN_SQL, &[&(b.last_off - b.first_off)])
            .await
            .expect("span");
        (client, offs)
    });
    let (client, early) = held;
    let late = b
        .write(&[sample("late", 1), test_append("late-row", 1)])
        .expect("the later transaction commits first");
    assert!(late
        .iter()
        .all(|o| *o as i64 > *early.iter().max().unwrap()));
    // While the early one is open, the later one's events stay behind the watermark.
    for _ in 0..20 {
        let page = reader.read_from(1, 100).expect("tail");
        assert!(
            page.is_empty(),
            "the tail read {:?} past a transaction still open at {early:?}",
            page.iter().map(|e| e.offset).collect::<Vec<_>>()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    rt.block_on(client.batch_execute("COMMIT")).expect("commit");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut seen = Vec::new();
    while seen.len() < 5 {
        assert!(std::time::Instant::now() < deadline, "read only {seen:?}");
        let from = seen.last().map_or(1, |o| o + 1);
        seen.extend(
            reader
                .read_from(from, 100)
                .expect("tail")
                .iter()
                .map(|e| e.offset),
        );
    }
    let mut want: Vec<u64> = early.iter().map(|o| *o as u64).chain(late).collect();
    want.sort();
    assert_eq!(seen, want, "every event, in offset order, none skipped");
}

struct Holds(Vec<(String, i64)>);

impl Fence for Holds {
    fn lease_for_stream(&self, stream_id: &str) -> String {
        format!("stream/{stream_id}")
    }
    fn lease_for_view(&self, _view: &str) -> Option<String> {
        None
    }
    fn held_epoch(&self, lease: &str) -> Option<i64> {
        self.0.iter().find(|(l, _)| l == lease).map(|(_, e)| *e)
    }
    fn node_id(&self) -> &str {
        "n1"
    }
}

fn set_lease(store: &PgStore, holder: &'static str, epoch: i64) {
    store
        .run(move |pool| async move {
            let client = pool.get().await.expect("connection");
            client
                .execute(
                    "INSERT INTO leases VALUES ('stream/a', $1, $2, clock_timestamp() + interval '1 minute') \
                     ON CONFLICT (name) DO UPDATE SET holder = $1, epoch = $2, expires_at = EXCLUDED.expires_at",
                    &[&holder, &epoch],
                )
                .await
                .expect("lease row");
        });
}

/// Given a node holding stream a's lease at epoch 1, when another node takes it (epoch 2),
/// then the first node's next write fails as fenced and writes nothing.
#[test]
fn a_write_under_a_lease_taken_by_another_node_is_fenced() {
    let Some(store) = open("fence") else { return };
    store
        .set_fence(Arc::new(Holds(vec![("stream/a".into(), 1)])))
        .expect("fence");
    set_lease(&store, "n1", 1);
    store.write(&[test_append("a", 1)]).expect("held lease");
    set_lease(&store, "n2", 2);
    let err = store.write(&[test_append("a", 2)]).expect_err("fenced");
    assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
    assert_eq!(store.stream_head("a").expect("head"), 1);
    // A stream whose lease this node never held is refused before the database is asked.
    let err = store.write(&[test_append("b", 1)]).expect_err("not held");
    assert!(matches!(err, StoreError::Fenced { .. }), "{err}");
}

/// Given store reads made from inside async tasks (as the projection runner and an actor's
/// start make them), when every worker of the runtime is in one, then the other tasks (ingest)
/// still run: a ticker on the same runtime is never held up for the length of a read.
#[test]
fn reads_from_async_tasks_do_not_stall_the_runtime() {
    let Some(store) = open("stall") else { return };
    let store = std::sync::Arc::new(store);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let worst_gap = rt.block_on(async move {
        let ticker = tokio::spawn(async {
            let mut worst = std::time::Duration::ZERO;
            let mut last = std::time::Instant::now();
            for _ in 0..60 {
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                worst = worst.max(last.elapsed());
                last = std::time::Instant::now();
            }
            worst
        });
        // Four slow reads (one second each) at once, from tasks: more than the two workers.
        let reads: Vec<_> = (0..4)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    store.run(|pool| async move {
                        let client = pool.get().await.expect("connection");
                        client
                            .execute("SELECT pg_sleep(1)", &[])
                            .await
                            .expect("sleep");
                    })
                })
            })
            .collect();
        for r in reads {
            r.await.expect("read");
        }
        ticker.await.expect("ticker")
    });
    // Without the hand-off both workers wait a second or more at a time (2.0 s measured); the
    // bound leaves room for a loaded machine.
    assert!(
        worst_gap < std::time::Duration::from_millis(1000),
        "a 25 ms ticker waited {worst_gap:?} behind store reads"
    );
}

/// Given streams written under leases, with raw samples (batched) and other events (rows):
/// - a: samples, a snapshot in the same write, then a row event;
/// - b: a row event only;
/// - c: never written;
/// - d: a tail of 300 samples over several writes (longer than a preload keeps);
/// - e: samples, a snapshot in a later write, then more samples;
///
/// when another store preloads those leases, then each stream's load and head are what a
/// load one stream at a time gives, on the writer (which knows where it wrote) and on a store
/// that knows nothing.
#[test]
fn a_preload_gives_what_loads_one_at_a_time_give() {
    let Some(writer) = open("preload") else {
        return;
    };
    let other = open("preload").expect("second node");
    let cold = open("preload").expect("third node");
    let snapshot = |stream: &str, seq| {
        WriteOp::Snapshot(Snapshot {
            stream_id: stream.into(),
            seq,
            state: vec![seq as u8],
        })
    };
    let mut ops: Vec<WriteOp> = (1..=3).map(|s| sample("a", s)).collect();
    ops.push(test_append("b", 1));
    ops.push(snapshot("a", 2));
    ops.extend((1..=5).map(|s| sample("e", s)));
    writer.write(&ops).expect("write");
    writer
        .write(&[test_append("a", 4), snapshot("e", 5)])
        .expect("write");
    for chunk in (1..=300u64).collect::<Vec<_>>().chunks(70) {
        let ops: Vec<WriteOp> = chunk
            .iter()
            .flat_map(|s| [sample("d", *s), sample("e", 5 + *s)])
            .collect();
        writer.write(&ops).expect("write");
    }
    let streams = ["a", "b", "c", "d", "e"];
    let leases: Vec<String> = streams.iter().map(|s| format!("stream/{s}")).collect();
    other
        .set_fence(Arc::new(Holds(
            leases.iter().map(|l| (l.clone(), 1)).collect(),
        )))
        .expect("fence");
    assert_eq!(other.preload(&leases).expect("preload"), 4);
    for stream in streams {
        let want = writer.load_one(stream, 1000).expect("load one");
        assert_eq!(
            cold.load_one(stream, 1000).expect("cold load"),
            want,
            "{stream}"
        );
        assert_eq!(
            cold.stream_head(stream).expect("cold head"),
            want.head,
            "{stream}"
        );
        assert_eq!(
            other.stream_head(stream).expect("head"),
            want.head,
            "{stream}"
        );
        let got = other.load_stream(stream, 1000).expect("load");
        assert_eq!(got, want, "{stream}");
    }
    let a = writer.load_one("a", 1000).expect("load a");
    assert_eq!(
        (
            a.snapshot.map(|s| s.seq),
            a.events.iter().map(|e| e.record.seq).collect::<Vec<_>>(),
            a.head
        ),
        (Some(2), vec![3, 4], 4)
    );
    let e = writer.load_one("e", 1000).expect("load e");
    assert_eq!((e.events.len(), e.head), (300, 305));
    assert_eq!(writer.load_one("d", 10).expect("load d").head, 300);
    assert_eq!(
        other.load_stream("a", 1000).expect("reload").events.len(),
        2
    );
    other.forget_preloaded(&leases);
    assert_eq!(other.stream_head("a").expect("head from the database"), 4);
}

/// Given the engine's internal names (the writer's probe checkpoint, the readiness read),
/// which start with NUL, then PostgreSQL stores and reads them (text refuses a raw NUL; a
/// node whose probe failed would never be ready).
#[test]
fn names_with_nul_are_stored_and_read() {
    let Some(store) = open("nul") else { return };
    let name = crate::events::writer::PROBE_CHECKPOINT;
    store
        .write(&[WriteOp::Checkpoint {
            name: name.into(),
            offset: 7,
        }])
        .expect("probe checkpoint");
    assert_eq!(store.checkpoint(name).expect("read"), Some(7));
    assert_eq!(store.stream_head("\u{0}readyz").expect("readiness read"), 0);
}

/// Given node n1 in the middle of a write (its fencing check passed, not yet committed), when
/// n2 takes n1's lease, then n2 waits for that write to end; once n2 holds the lease, n1's
/// next check is refused as fenced, naming the lease.
#[test]
fn a_takeover_waits_for_the_old_holders_write_in_flight_then_fences_it() {
    let Some(store) = open("takeover") else {
        return;
    };
    set_lease(&store, "n1", 1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pool = store.new_pool(2).expect("pool");
    rt.block_on(async {
        let n1 = pool.get().await.expect("n1");
        let n2 = pool.get().await.expect("n2");
        let lease = vec!["stream/a".to_string()];
        n1.batch_execute("BEGIN").await.expect("begin");
        n1.query(
            "SELECT fence_check($1, $2, $3)",
            &[&"n1", &lease, &vec![1i64]],
        )
        .await
        .expect("n1 holds the lease");
        // n2's takeover blocks behind n1's open write.
        n2.batch_execute("BEGIN; SET LOCAL lock_timeout = '300ms'")
            .await
            .expect("begin");
        let blocked = n2.execute(LOCK_HOLDERS_SQL, &[&lease, &"n2"]).await;
        let err = blocked.expect_err("the takeover must wait for the write in flight");
        assert_eq!(
            err.as_db_error().map(|e| e.code().code()),
            Some("55P03"),
            "{err}"
        );
        n2.batch_execute("ROLLBACK").await.expect("rollback");
        n1.batch_execute("COMMIT")
            .await
            .expect("n1's write commits");
        // Now it goes through, and takes the lease.
        n2.batch_execute("BEGIN").await.expect("begin");
        n2.execute(LOCK_HOLDERS_SQL, &[&lease, &"n2"])
            .await
            .expect("nothing in flight");
        n2.execute(
            "UPDATE leases SET holder = 'n2', epoch = epoch + 1 WHERE name = 'stream/a'",
            &[],
        )
        .await
        .expect("take");
        n2.batch_execute("COMMIT").await.expect("commit");
        let err = n1
            .query(
                "SELECT fence_check($1, $2, $3)",
                &[&"n1", &lease, &vec![1i64]],
            )
            .await
            .expect_err("fenced");
        match db_err(err) {
            StoreError::Fenced { lease, reason } => {
                assert_eq!(lease, "stream/a");
                assert!(reason.contains("taken"), "{reason}");
            }
            other => panic!("not fenced: {other}"),
        }
    });
}
