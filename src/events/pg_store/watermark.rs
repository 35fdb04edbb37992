//! Which offsets a tailer may read (pure): those no transaction still in flight can commit.
//!
//! Offsets come from a sequence, taken inside each writing transaction with no lock held to
//! COMMIT, so transactions can commit out of offset order. Every writer takes its transaction
//! id before its offsets. An observation reads, in this order, the highest offset handed out
//! (`taken`) and then takes a transaction id of its own (`xid`, with a snapshot's `xmin`).
//! Every transaction that took an offset up to `taken` had its id before that, so its id is
//! below `xid` (ids are handed out in order; a snapshot's `xmax` is no such bound, it is only
//! the last *completed* id plus one). Once a snapshot's `xmin` reaches `xid`, all of them have
//! committed or rolled back, and no commit can land at or below `taken` any more. Offsets of a
//! transaction that rolled back are gaps for good.

use std::collections::VecDeque;

/// Observations kept while older transactions are still open (a very long transaction
/// elsewhere only delays the mark; dropping the oldest observation only delays it more).
const MAX_PENDING: usize = 1024;

#[derive(Debug, Default)]
pub struct Watermark {
    safe: u64,
    /// (taken, xid) of observations not yet safe, in order.
    pending: VecDeque<(u64, u64)>,
}

impl Watermark {
    /// Given a new observation, the offset up to which the log is final.
    pub fn observe(&mut self, taken: u64, xmin: u64, xid: u64) -> u64 {
        if taken > self.safe {
            self.pending.push_back((taken, xid));
        }
        while let Some(&(taken, xid)) = self.pending.front() {
            if xid > xmin {
                break;
            }
            self.safe = self.safe.max(taken);
            self.pending.pop_front();
        }
        while self.pending.len() > MAX_PENDING {
            self.pending.pop_front();
        }
        self.safe
    }

    pub fn safe(&self) -> u64 {
        self.safe
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_no_transaction_in_flight_when_observed_then_every_offset_taken_is_final() {
        let mut w = Watermark::default();
        assert_eq!(w.observe(10, 500, 500), 10);
    }

    #[test]
    fn given_a_transaction_in_flight_when_observed_then_the_mark_waits_for_it() {
        let mut w = Watermark::default();
        // Transaction 498 is open and may hold offsets up to 10.
        assert_eq!(w.observe(10, 498, 500), 0);
        // More offsets are taken while it stays open.
        assert_eq!(w.observe(25, 498, 505), 0);
        // It ends; the transactions open at the second look (up to 504) have not.
        assert_eq!(w.observe(30, 502, 506), 10);
        assert_eq!(w.observe(30, 506, 506), 30);
    }

    #[test]
    fn given_the_mark_reached_then_it_never_goes_back() {
        let mut w = Watermark::default();
        assert_eq!(w.observe(40, 600, 600), 40);
        assert_eq!(w.observe(40, 590, 601), 40);
        assert_eq!(w.safe(), 40);
    }

    #[test]
    fn given_a_transaction_open_for_long_then_observations_stay_bounded() {
        let mut w = Watermark::default();
        for i in 0..5000u64 {
            w.observe(i + 1, 7, 100 + i);
        }
        assert!(w.pending.len() <= MAX_PENDING);
        assert_eq!(w.observe(6000, 10_000, 10_000), 6000);
    }
}
