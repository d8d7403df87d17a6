//! The delivery checker: per (connection, chat), seqs must arrive gap-free, in order, exactly once.

use std::collections::BTreeSet;

/// Gaps wider than this are not remembered seq by seq (a broken server could announce seq 10⁹);
/// they still count as order violations or losses, just not individually.
const MAX_TRACKED_GAP: i64 = 1 << 20;

/// What one arriving seq was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The next seq expected.
    InOrder,
    /// Ahead of the next expected one: the seqs in between are missing for now.
    Ahead,
    /// A seq that was missing arrived late: delivered, but out of order.
    Late,
    /// Already delivered.
    Duplicate,
}

/// Tracks one chat as one connection sees it.
#[derive(Debug, Clone)]
pub struct SeqChecker {
    /// The seq expected next.
    next: i64,
    /// Seqs skipped over that have not arrived (yet).
    missing: BTreeSet<i64>,
    /// Skipped seqs beyond [`MAX_TRACKED_GAP`], counted only.
    untracked_missing: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub order_violations: u64,
}

impl SeqChecker {
    /// A checker for a chat whose messages up to `last_seq` are already known to the client.
    pub fn new(last_seq: i64) -> Self {
        Self {
            next: last_seq + 1,
            missing: BTreeSet::new(),
            untracked_missing: 0,
            delivered: 0,
            duplicates: 0,
            order_violations: 0,
        }
    }

    pub fn on_seq(&mut self, seq: i64) -> Arrival {
        if seq == self.next {
            self.next += 1;
            self.delivered += 1;
            Arrival::InOrder
        } else if seq > self.next {
            let gap = seq - self.next;
            if gap > MAX_TRACKED_GAP {
                self.untracked_missing += gap as u64;
            } else {
                self.missing.extend(self.next..seq);
            }
            self.next = seq + 1;
            self.delivered += 1;
            Arrival::Ahead
        } else if self.missing.remove(&seq) {
            self.delivered += 1;
            self.order_violations += 1;
            Arrival::Late
        } else {
            self.duplicates += 1;
            Arrival::Duplicate
        }
    }

    /// The highest seq such that everything up to it has arrived.
    pub fn contiguous(&self) -> i64 {
        self.missing.first().map_or(self.next - 1, |first| first - 1)
    }

    /// The last seq the client has seen: what it resumes from.
    pub fn last_seen(&self) -> i64 {
        self.next - 1
    }

    /// Messages up to `last_seq` (the chat's highest acknowledged seq) that never arrived.
    pub fn lost(&self, last_seq: i64) -> u64 {
        self.missing.range(..=last_seq).count() as u64
            + self.untracked_missing
            + u64::try_from(last_seq - (self.next - 1)).unwrap_or(0)
    }

    /// Whether everything up to `last_seq` has arrived.
    pub fn caught_up(&self, last_seq: i64) -> bool {
        self.untracked_missing == 0 && self.contiguous() >= last_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream_is_clean() {
        let mut c = SeqChecker::new(5);
        for seq in 6..=10 {
            assert_eq!(c.on_seq(seq), Arrival::InOrder);
        }
        assert_eq!((c.delivered, c.duplicates, c.order_violations, c.lost(10)), (5, 0, 0, 0));
        assert!(c.caught_up(10));
    }

    #[test]
    fn a_gap_is_a_loss_until_it_fills_late() {
        let mut c = SeqChecker::new(0);
        c.on_seq(1);
        assert_eq!(c.on_seq(4), Arrival::Ahead);
        assert_eq!(c.lost(4), 2);
        assert_eq!(c.contiguous(), 1);
        assert!(!c.caught_up(4));
        assert_eq!(c.on_seq(3), Arrival::Late);
        assert_eq!(c.on_seq(2), Arrival::Late);
        assert_eq!((c.lost(4), c.order_violations, c.delivered), (0, 2, 4));
        assert!(c.caught_up(4));
    }

    #[test]
    fn repeats_are_duplicates() {
        let mut c = SeqChecker::new(0);
        c.on_seq(1);
        c.on_seq(2);
        assert_eq!(c.on_seq(2), Arrival::Duplicate);
        assert_eq!(c.on_seq(1), Arrival::Duplicate);
        // Already known before the checker started.
        assert_eq!(c.on_seq(0), Arrival::Duplicate);
        assert_eq!((c.delivered, c.duplicates, c.order_violations), (2, 3, 0));
        // A late seq that already arrived once is a duplicate the second time.
        c.on_seq(4);
        assert_eq!(c.on_seq(3), Arrival::Late);
        assert_eq!(c.on_seq(3), Arrival::Duplicate);
        assert_eq!(c.duplicates, 4);
    }

    #[test]
    fn missing_tail_counts_as_lost() {
        let mut c = SeqChecker::new(10);
        c.on_seq(11);
        assert_eq!(c.lost(15), 4);
        assert_eq!(c.last_seen(), 11);
        // Deliveries beyond what was acknowledged are not losses.
        c.on_seq(12);
        assert_eq!(c.lost(11), 0);
    }

    #[test]
    fn huge_gaps_are_counted_not_stored() {
        let mut c = SeqChecker::new(0);
        c.on_seq(MAX_TRACKED_GAP + 10);
        assert_eq!(c.lost(MAX_TRACKED_GAP + 10), (MAX_TRACKED_GAP + 9) as u64);
        assert!(c.missing.is_empty());
    }
}
