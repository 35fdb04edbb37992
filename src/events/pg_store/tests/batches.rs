//! The PostgreSQL engine's batches: reads across batches, rows and removals, and a write that
//! fails between its round trips.

use super::{open, sample, PgStore};
use crate::events::store::{test_append, EventStore, WriteOp};

/// Given 40 streams written in 30 group commits (batches in every partition, with rows among
/// them), and then every other event of the first 600 offsets removed (as retention does),
/// then:
/// - the log read in pages of 7 gives every remaining event once, in offset order;
/// - a stream read from a middle seq gives its remaining events, and its head is its last seq,
///   on the writer and on a store that knows nothing of where it wrote;
/// - a packed sample is read by its seq, a removed one is gone.
#[test]
fn batched_events_read_back_by_offset_and_by_stream_across_batches_and_removals() {
    let Some(store) = open("batches") else { return };
    let mut written: Vec<(u64, String, u64)> = Vec::new();
    for commit in 1..=30u64 {
        let ops: Vec<WriteOp> = (0..40)
            .map(|k| match k % 13 {
                0 => test_append(&format!("s{k}"), commit),
                _ => sample(&format!("s{k}"), commit),
            })
            .collect();
        let offsets = store.write(&ops).expect("write");
        for (offset, k) in offsets.iter().zip(0..40) {
            written.push((*offset, format!("s{k}"), commit));
        }
    }
    let kept = |w: &&(u64, String, u64)| w.0 > 600 || w.0 % 2 == 1;
    let removals: Vec<WriteOp> = written
        .iter()
        .filter(|w| !kept(w))
        .map(|(offset, stream_id, seq)| WriteOp::Remove {
            offset: *offset,
            stream_id: stream_id.clone(),
            seq: *seq,
        })
        .collect();
    store.write(&removals).expect("remove");
    let want: Vec<u64> = written.iter().filter(kept).map(|w| w.0).collect();
    let mut got = Vec::new();
    let mut from = 1;
    loop {
        let page = store.read_from(from, 7).expect("tail");
        let Some(last) = page.last() else { break };
        from = last.offset + 1;
        got.extend(page.iter().map(|e| e.offset));
    }
    assert_eq!(got, want, "the log by offset");
    let cold = open("batches").expect("another store");
    for k in [1, 13, 22] {
        let s = format!("s{k}");
        let want: Vec<u64> = written
            .iter()
            .filter(kept)
            .filter(|w| w.1 == s && w.2 >= 10)
            .map(|w| w.2)
            .collect();
        for reader in [&store, &cold] {
            assert_eq!(stream_seqs(reader, &s, 10, 1000), want, "{s}");
            assert_eq!(reader.stream_head(&s).expect("head"), 30, "{s}");
        }
        assert_eq!(stream_seqs(&cold, &s, 1, 3).len(), 3, "{s}: a page of 3");
    }
    let present = written
        .iter()
        .find(|w| w.0 > 600 && w.1 == "s5")
        .expect("a sample kept");
    let event = cold.read_event(&present.1, present.2).expect("read");
    assert_eq!(event.map(|e| e.offset), Some(present.0));
    let gone = written
        .iter()
        .find(|w| !kept(w) && w.1 == "s5")
        .expect("a sample removed");
    assert_eq!(cold.read_event(&gone.1, gone.2).expect("read"), None);
}

/// The seqs `read_stream` answers.
fn stream_seqs(store: &PgStore, stream_id: &str, from_seq: u64, limit: usize) -> Vec<u64> {
    store
        .read_stream(stream_id, from_seq, limit)
        .expect("read")
        .iter()
        .map(|e| e.record.seq)
        .collect()
}

/// Given a write whose second round trip fails before COMMIT is sent (a statement that cannot
/// be prepared: its table is gone), when the table is back, then every next write commits (no
/// connection went back to the pool inside the failed transaction).
#[test]
fn a_write_that_fails_midway_leaves_its_connections_usable() {
    let Some(store) = open("midway") else { return };
    let rename = |from: &'static str, to: &'static str| {
        store.run(move |pool| async move {
            let client = pool.get().await.expect("connection");
            client
                .batch_execute(&format!("ALTER TABLE {from} RENAME TO {to}"))
                .await
                .expect("rename");
        })
    };
    rename("views", "views_gone");
    let put = WriteOp::PutView {
        view: "v".into(),
        key: vec![1],
        value: vec![2],
    };
    store
        .write(&[sample("a", 1), put.clone()])
        .expect_err("the views table is gone");
    rename("views_gone", "views");
    for seq in 1..=8 {
        store
            .write(&[sample("a", seq), put.clone()])
            .expect("the next writes commit");
    }
    let other = open("midway").expect("another store");
    assert_eq!(other.stream_head("a").expect("head"), 8);
    assert_eq!(other.scan_view("v", &[], 10).expect("view").len(), 1);
}
