//! One conformance suite, run against every engine: the same tests, so the engines are
//! interchangeable behind `EventStore`. (The kill -9 test, also run per engine, is in
//! tests/crash.rs because it needs a real process to kill.)

use super::codec::EventRecord;
use super::retention::{self, RetentionPolicy};
use super::store::{EventStore, NewEvent, Snapshot, StoreError, WriteOp};
use super::writer::Writer;
use super::{open_store, Engine};
use std::path::Path;
use std::sync::Arc;

mod archiving;

/// A raw sample is a real `MetricObserved` (so an engine may pack it); other events carry a
/// placeholder payload.
fn record(stream: &str, seq: u64, event_type: &str, recorded_at_ms: i64) -> EventRecord {
    let sample = (event_type == "MetricObserved").then(|| crate::sample::Sample {
        stream_id: stream.into(),
        timestamp_ms: seq as i64 * 1000,
        utilization_pct: Some(seq as f64 / 3.0),
        ..Default::default()
    });
    EventRecord {
        stream_id: stream.into(),
        seq,
        recorded_at_ms,
        event_type: event_type.to_string().into(),
        schema_version: if sample.is_some() {
            super::codec::METRIC_OBSERVED.1
        } else {
            1
        },
        correlation_id: None,
        payload: match sample {
            Some(sample) => super::codec::encode_payload(&super::StreamEvent::MetricObserved(
                super::types::MetricObservedV3 { sample },
            )),
            None => vec![seq as u8; 3],
        },
        trace: None,
    }
}

/// A raw sample append (packable by engines that pack).
pub(crate) fn append(stream: &str, seq: u64) -> WriteOp {
    WriteOp::Append(NewEvent::new(&record(stream, seq, "MetricObserved", 1000)))
}

fn seqs(events: &[super::StoredEvent]) -> Vec<(String, u64)> {
    events
        .iter()
        .map(|e| (e.record.stream_id.clone(), e.record.seq))
        .collect()
}

fn appends_get_gapless_offsets(open: fn(&Path) -> Arc<dyn EventStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    assert_eq!(store.last_offset(), 0);
    let offsets = store
        .write(&[append("a", 1), append("b", 1), append("a", 2)])
        .expect("write");
    assert_eq!(offsets, vec![1, 2, 3]);
    let offsets = store.write(&[append("b", 2)]).expect("write");
    assert_eq!(offsets, vec![4]);
    assert_eq!(store.last_offset(), 4);
    let all = store.read_from(1, 100).expect("read");
    assert_eq!(
        all.iter().map(|e| e.offset).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(all[0].record, record("a", 1, "MetricObserved", 1000));
}

fn reads_one_stream_in_seq_order(open: fn(&Path) -> Arc<dyn EventStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    // "a" and "a/b" share a prefix; the index must keep them apart.
    let mut ops = Vec::new();
    for seq in 1..=5 {
        ops.push(append("a", seq));
        ops.push(append("a/b", seq));
    }
    store.write(&ops).expect("write");
    let a = store.read_stream("a", 1, 100).expect("read");
    assert_eq!(
        seqs(&a),
        (1..=5).map(|s| ("a".to_string(), s)).collect::<Vec<_>>()
    );
    let page = store.read_stream("a", 3, 2).expect("read");
    assert_eq!(seqs(&page), vec![("a".into(), 3), ("a".into(), 4)]);
    assert_eq!(store.stream_head("a").expect("head"), 5);
    assert_eq!(store.stream_head("a/b").expect("head"), 5);
    assert_eq!(store.stream_head("nope").expect("head"), 0);
    assert!(store.read_stream("nope", 1, 10).expect("read").is_empty());
}

fn tails_by_offset_in_pages(open: fn(&Path) -> Arc<dyn EventStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let ops: Vec<_> = (1..=25).map(|s| append("t", s)).collect();
    store.write(&ops).expect("write");
    let mut from = 1;
    let mut seen = Vec::new();
    loop {
        let page = store.read_from(from, 10).expect("read");
        let Some(last) = page.last() else { break };
        from = last.offset + 1;
        seen.extend(page.iter().map(|e| e.offset));
    }
    assert_eq!(seen, (1..=25).collect::<Vec<_>>());
}

fn reopen_keeps_everything(open: fn(&Path) -> Arc<dyn EventStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        store
            .write(&[append("a", 1), append("a", 2)])
            .expect("write");
        store
            .write(&[
                WriteOp::Snapshot(Snapshot {
                    stream_id: "a".into(),
                    seq: 2,
                    state: vec![9, 9],
                }),
                WriteOp::Checkpoint {
                    name: "proj".into(),
                    offset: 2,
                },
            ])
            .expect("write");
    }
    let store = open(dir.path());
    assert_eq!(store.last_offset(), 2);
    assert_eq!(store.stream_head("a").expect("head"), 2);
    let snap = store.snapshot("a").expect("snapshot").expect("some");
    assert_eq!((snap.seq, snap.state), (2, vec![9, 9]));
    assert_eq!(store.checkpoint("proj").expect("checkpoint"), Some(2));
    assert_eq!(store.checkpoint("other").expect("checkpoint"), None);
    assert_eq!(store.write(&[append("a", 3)]).expect("write"), vec![3]);
}

fn removed_offsets_are_never_reused(open: fn(&Path) -> Arc<dyn EventStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = open(dir.path());
        store
            .write(&[append("a", 1), append("a", 2)])
            .expect("write");
        store
            .write(&[
                WriteOp::Remove {
                    offset: 1,
                    stream_id: "a".into(),
                    seq: 1,
                },
                WriteOp::Remove {
                    offset: 2,
                    stream_id: "a".into(),
                    seq: 2,
                },
            ])
            .expect("remove");
        assert!(store.read_from(1, 10).expect("read").is_empty());
        assert!(store.read_stream("a", 1, 10).expect("read").is_empty());
    }
    let store = open(dir.path());
    assert_eq!(store.last_offset(), 2);
    assert_eq!(store.write(&[append("b", 1)]).expect("write"), vec![3]);
}

async fn writer_group_commits_concurrent_appends(open: fn(&Path) -> Arc<dyn EventStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let writer = Writer::spawn(store.clone(), 10_000);
    let mut tasks = Vec::new();
    for stream in 0..20 {
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            for seq in 1..=10 {
                writer
                    .write(vec![append(&format!("s{stream}"), seq)])
                    .await
                    .expect("append");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(store.last_offset(), 200);
    for stream in 0..20 {
        assert_eq!(store.stream_head(&format!("s{stream}")).expect("head"), 10);
    }
}

async fn writer_rejects_a_seq_gap_or_repeat(open: fn(&Path) -> Arc<dyn EventStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let writer = Writer::spawn(store.clone(), 10_000);
    writer.write(vec![append("a", 1)]).await.expect("first");
    let repeat = writer.write(vec![append("a", 1)]).await;
    assert!(matches!(
        repeat,
        Err(StoreError::SeqConflict {
            expected: 2,
            got: 1,
            ..
        })
    ));
    let gap = writer.write(vec![append("a", 3)]).await;
    assert!(matches!(
        gap,
        Err(StoreError::SeqConflict {
            expected: 2,
            got: 3,
            ..
        })
    ));
    // A rejected request writes nothing, and does not disturb the others.
    writer.write(vec![append("a", 2)]).await.expect("next");
    assert_eq!(store.last_offset(), 2);
}

fn retention_drops_only_old_raw_samples_covered_by_a_snapshot(
    open: fn(&Path) -> Arc<dyn EventStore>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let day = 86_400_000;
    let ops = vec![
        WriteOp::Append(NewEvent::new(&record("a", 1, "MetricObserved", 0))),
        WriteOp::Append(NewEvent::new(&record("a", 2, "AnomalyDetected", 0))),
        WriteOp::Append(NewEvent::new(&record("a", 3, "MetricObserved", 0))),
        WriteOp::Append(NewEvent::new(&record("b", 1, "MetricObserved", 0))),
        WriteOp::Append(NewEvent::new(&record("a", 4, "MetricObserved", 10 * day))),
        WriteOp::Snapshot(Snapshot {
            stream_id: "a".into(),
            seq: 2,
            state: vec![],
        }),
    ];
    store.write(&ops).expect("write");
    let policy = RetentionPolicy {
        raw_max_age_ms: day,
        events_max_age_ms: None,
    };
    let removals = retention::plan(store.as_ref(), policy, 10 * day, 1000).expect("plan");
    // Only a#1: a#3 is not covered by the snapshot, b has no snapshot, a#2 is not raw,
    // a#4 is recent.
    let removed: Vec<_> = removals
        .iter()
        .map(|op| match op {
            WriteOp::Remove { stream_id, seq, .. } => (stream_id.clone(), *seq),
            _ => panic!("retention planned a non-removal"),
        })
        .collect();
    assert_eq!(removed, vec![("a".to_string(), 1)]);
    store.write(&removals).expect("remove");
    assert_eq!(
        seqs(&store.read_stream("a", 1, 10).expect("read")),
        vec![("a".into(), 2), ("a".into(), 3), ("a".into(), 4)]
    );
}

/// Retention may remove every event of an idle stream up to its snapshot; the stream then
/// goes on at the seq it had, and a removed seq reads as absent, never as a later event.
async fn a_stream_idle_past_retention_continues_at_its_seq(open: fn(&Path) -> Arc<dyn EventStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let day = 86_400_000;
    let mut ops: Vec<WriteOp> = (1..=5)
        .map(|seq| WriteOp::Append(NewEvent::new(&record("idle", seq, "MetricObserved", 0))))
        .collect();
    ops.push(WriteOp::Snapshot(Snapshot {
        stream_id: "idle".into(),
        seq: 5,
        state: vec![],
    }));
    store.write(&ops).expect("write");
    let policy = RetentionPolicy {
        raw_max_age_ms: day,
        events_max_age_ms: None,
    };
    let removals = retention::plan(store.as_ref(), policy, 8 * day, 1000).expect("plan");
    assert_eq!(removals.len(), 5);
    store.write(&removals).expect("remove");
    assert!(store.read_stream("idle", 1, 10).expect("read").is_empty());
    assert_eq!(store.stream_head("idle").expect("head"), 5);
    let writer = Writer::spawn(store.clone(), 100);
    writer
        .write(vec![append("idle", 6)])
        .await
        .expect("the next seq after the snapshot is accepted");
    assert!(store.read_event("idle", 5).expect("read").is_none());
    assert_eq!(
        store
            .read_event("idle", 6)
            .expect("read")
            .map(|e| e.record.seq),
        Some(6)
    );
}

fn views_scan_in_key_order_within_their_view(open: fn(&Path) -> Arc<dyn EventStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let put = |view: &str, key: &[u8], value: &[u8]| WriteOp::PutView {
        view: view.into(),
        key: key.to_vec(),
        value: value.to_vec(),
    };
    store
        .write(&[
            put("insights", b"b", b"2"),
            put("insights", b"a", b"1"),
            put("insights", b"c", b"3"),
            put("insightsx", b"a", b"other view"),
            put("alerts", b"a", b"alert"),
        ])
        .expect("write");
    let all = store.scan_view("insights", b"", 10).expect("scan");
    let keys: Vec<&[u8]> = all.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, vec![&b"a"[..], b"b", b"c"]);
    let page = store.scan_view("insights", b"b", 1).expect("scan");
    assert_eq!(page, vec![(b"b".to_vec(), b"2".to_vec())]);
    store
        .write(&[put("insights", b"a", b"1bis")])
        .expect("overwrite");
    assert_eq!(
        store.scan_view("insights", b"", 1).expect("scan")[0].1,
        b"1bis".to_vec()
    );
    assert!(store.scan_view("none", b"", 10).expect("scan").is_empty());
    store
        .write(&[WriteOp::RemoveView {
            view: "insights".into(),
            key: b"b".to_vec(),
        }])
        .expect("remove");
    let keys: Vec<Vec<u8>> = store
        .scan_view("insights", b"", 10)
        .expect("scan")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![b"a".to_vec(), b"c".to_vec()]);
}

pub(crate) use super::pg_store::test_url as pg_test_url;

fn open_pg(dir: &Path) -> Arc<dyn EventStore> {
    let url = pg_test_url().expect("checked by the test");
    let schema = format!(
        "conf_{:016x}",
        crate::hash::fnv1a64(dir.display().to_string().bytes())
    );
    Arc::new(super::pg_store::PgStore::open(&url, &schema, 4).expect("open postgres"))
}

fn loads_a_stream_in_one_call(open: fn(&Path) -> Arc<dyn EventStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(dir.path());
    let load = store.load_stream("a", 10).expect("load");
    assert_eq!((load.snapshot, load.events.len(), load.head), (None, 0, 0));
    let mut ops: Vec<_> = (1..=6).map(|seq| append("a", seq)).collect();
    ops.push(append("a/b", 1));
    ops.push(WriteOp::Snapshot(Snapshot {
        stream_id: "a".into(),
        seq: 2,
        state: vec![7],
    }));
    store.write(&ops).expect("write");
    let load = store.load_stream("a", 3).expect("load");
    assert_eq!(load.snapshot.map(|s| (s.seq, s.state)), Some((2, vec![7])));
    assert_eq!(
        seqs(&load.events),
        vec![("a".into(), 3), ("a".into(), 4), ("a".into(), 5)]
    );
    assert_eq!(load.head, 6);
}

macro_rules! conformance {
    ($engine:ident, $open:expr) => {
        conformance!($engine, $open, || true);
    };
    ($engine:ident, $open:expr, $ready:expr) => {
        mod $engine {
            use super::*;
            const OPEN: fn(&Path) -> Arc<dyn EventStore> = $open;
            fn ready() -> bool {
                let ready: fn() -> bool = $ready;
                ready()
            }

            #[test]
            fn gapless_offsets() {
                if !ready() {
                    return;
                }
                appends_get_gapless_offsets(OPEN);
            }
            #[test]
            fn per_stream_reads() {
                if !ready() {
                    return;
                }
                reads_one_stream_in_seq_order(OPEN);
            }
            #[test]
            fn tailing() {
                if !ready() {
                    return;
                }
                tails_by_offset_in_pages(OPEN);
            }
            #[test]
            fn reopen() {
                if !ready() {
                    return;
                }
                reopen_keeps_everything(OPEN);
            }
            #[test]
            fn no_offset_reuse() {
                if !ready() {
                    return;
                }
                removed_offsets_are_never_reused(OPEN);
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn group_commit() {
                if !ready() {
                    return;
                }
                writer_group_commits_concurrent_appends(OPEN).await;
            }
            #[tokio::test]
            async fn seq_check() {
                if !ready() {
                    return;
                }
                writer_rejects_a_seq_gap_or_repeat(OPEN).await;
            }
            #[test]
            fn load_stream() {
                if !ready() {
                    return;
                }
                loads_a_stream_in_one_call(OPEN);
            }
            #[test]
            fn views() {
                if !ready() {
                    return;
                }
                views_scan_in_key_order_within_their_view(OPEN);
            }
            #[tokio::test]
            async fn idle_past_retention() {
                if !ready() {
                    return;
                }
                a_stream_idle_past_retention_continues_at_its_seq(OPEN).await;
            }
            #[test]
            fn retention() {
                if !ready() {
                    return;
                }
                retention_drops_only_old_raw_samples_covered_by_a_snapshot(OPEN);
            }
        }
    };
}

conformance!(fjall, |dir| open_store(Engine::Fjall, dir)
    .expect("open fjall"));
// fjall packing every full segment of three events after each write, so reads go through
// segments, records and the seams between them.
conformance!(fjall_packed, archiving::open);
conformance!(sled, |dir| open_store(Engine::Sled, dir)
    .expect("open sled"));
conformance!(postgres, open_pg, || pg_test_url().is_some());
