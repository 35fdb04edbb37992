//! `--rate N`: the open loop.

use super::{sample_of, IngestBenchArgs, Outcome, Sink};
use crate::sim;

/// Batch i is due at start + i × batch / rate and leaves then, however many are in flight;
/// its latency counts from when it was due. Sample n of the run is stream n mod streams, its
/// (n / streams)-th sample. Like a collector's connections (and wrk2's), each lane sends its
/// batches in order, one at a time: a stream's samples stay in order, and a batch that waits
/// for its lane counts the wait as latency.
pub(super) async fn open_loop(
    args: &IngestBenchArgs,
    sinks: &[Sink],
    rate: u64,
    base_ms: i64,
) -> anyhow::Result<Outcome> {
    let period = std::time::Duration::from_secs_f64(args.batch as f64 / rate as f64);
    let start = tokio::time::Instant::now();
    let mut rng = sim::Rng::new(1);
    let lanes = lanes(args.streams, args.batch);
    let mut queues = Vec::with_capacity(lanes);
    let mut workers = tokio::task::JoinSet::new();
    for lane in 0..lanes {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(
            tokio::time::Instant,
            Vec<crate::sample::Sample>,
        )>();
        queues.push(tx);
        let sink = sinks[lane % sinks.len()].clone();
        workers.spawn(async move {
            let mut out = Outcome::default();
            while let Some((due, samples)) = rx.recv().await {
                let values: usize = samples.iter().map(|s| s.value_count()).sum();
                let answer = sink.send(samples).await?;
                let ms = due.elapsed();
                let at = (due - start) + ms;
                out.add(&answer, values, ms.as_secs_f64() * 1000.0, at.as_secs_f64());
            }
            anyhow::Ok(out)
        });
    }
    let batches = args.samples.div_ceil(args.batch);
    for i in 0..batches {
        let due = start + period * i as u32;
        tokio::time::sleep_until(due).await;
        let range = i * args.batch..((i + 1) * args.batch).min(args.samples);
        let samples: Vec<_> = range
            .map(|n| {
                let (stream, k) = (n % args.streams, (n / args.streams) as u64);
                sample_of(&mut rng, stream, k, base_ms, args.anomaly_every)
            })
            .collect();
        if queues[i % lanes].send((due, samples)).is_err() {
            // The lane's worker ended on an error: stop sending, and report that error below.
            break;
        }
    }
    drop(queues);
    let mut total = Outcome::default();
    while let Some(done) = workers.join_next().await {
        total.merge(done??);
    }
    let sent = total.latencies_ms.len();
    anyhow::ensure!(
        sent == batches,
        "the open loop sent {sent} of {batches} batches"
    );
    Ok(total)
}

/// In-order lanes for the open loop: batch i goes to lane i mod lanes, so every batch holding
/// a stream must land in one lane. When batches tile the streams exactly (streams a multiple
/// of batch), batch i holds block i mod (streams / batch), one lane each; otherwise a stream
/// moves between batches and one lane keeps them all in order.
fn lanes(streams: usize, batch: usize) -> usize {
    if streams >= batch && streams.is_multiple_of(batch) {
        streams / batch
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::lanes;

    #[test]
    fn given_batches_that_tile_the_streams_then_one_lane_per_block() {
        assert_eq!(lanes(10_000, 100), 100);
        assert_eq!(lanes(100, 100), 1);
    }

    #[test]
    fn given_batches_that_straddle_streams_then_one_lane_keeps_them_in_order() {
        assert_eq!(lanes(150, 100), 1);
        assert_eq!(lanes(50, 100), 1);
    }
}
