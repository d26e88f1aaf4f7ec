//! One worker's pipeline as a dispatcher sees it: the pieces sent to it and
//! not fully answered, in send order, how many tasks they hold, and the
//! room rule that says whether it gets another piece.
//!
//! Both dispatchers keep a [`Lane`] per worker: the local pool's
//! (`dispatch.rs`, a worker process) and the MPI pool's (`mpi/dispatch.rs`,
//! a worker rank), each with what it keeps besides per piece as `X`.
//! Results must answer the front piece in order (`docs/protocols/pool.md`,
//! "Which task does a worker hold?"; `docs/protocols/pool-mpi.md`):
//! [`Flight::check`] says whether a `RESULTS` header does, [`Lane::answer`]
//! counts it. The lane reads no clock: callers pass the time.

use std::collections::VecDeque;

use super::dispatch::Piece;
use super::job::{Arrival, Fail};
use super::layout::{ResultsHdr, TaskHdr, RESULTS_HDR, TASK_HDR};

/// A piece that takes longer than this keeps its worker's queue short
/// (2 pieces): slow tasks queued behind a busy worker would wait while
/// another worker idles. Shorter pieces keep a deep pipeline (throughput).
/// Well above a scheduler time slice, so that a worker merely preempted on
/// a loaded machine does not lose its pipeline.
const SLOW_PIECE_MS: u64 = 20;

/// A piece of many tasks that took at most this (about one tick of the
/// coarse clock) lets its worker queue up to `QUICK_DEPTH` of them: a
/// million tiny tasks come in pieces of ~20 µs, and with 2 queued the
/// worker often ran dry waiting for the parent. At most ~30 ms of work then
/// waits behind one worker.
const QUICK_PIECE_MS: u64 = 4;
const QUICK_DEPTH: usize = 8;

/// A finished piece's argument buffer at least this large becomes the
/// buffer the next message is received into (a piece's results are about
/// its arguments' size; a smaller buffer would only be grown).
pub(super) const RECYCLE_MIN: usize = 4096;

/// A piece sent to a worker and not fully answered.
pub(super) struct Flight<X = ()> {
    pub(super) piece: Piece,
    /// Its number in send order (what the worker's results name).
    seq: u32,
    /// Its first `answered` tasks have results.
    answered: u32,
    /// When it was sent (coarse milliseconds).
    sent: u64,
    /// What the dispatcher keeps besides.
    #[cfg_attr(not(feature = "mpi"), allow(dead_code))] // the local one keeps nothing
    pub(super) extra: X,
}

impl<X> Flight<X> {
    pub(super) fn seq(&self) -> u32 {
        self.seq
    }

    pub(super) fn answered(&self) -> u32 {
        self.answered
    }

    /// Tasks without results yet.
    fn left(&self) -> u32 {
        self.piece.count() - self.answered
    }

    /// Whether `h` answers this piece next: its `seq`, tasks from the
    /// answered count on, at least one and no more than are left. If not,
    /// what was expected and what was found.
    pub(super) fn check(&self, h: &ResultsHdr) -> Result<(), String> {
        let left = self.left();
        if h.seq != self.seq || h.first != self.answered || h.count > left || h.count == 0 {
            return Err(format!(
                "expected results of piece {} from item {} (at most {left}), found piece {} items {}+{}",
                self.seq, self.answered, h.seq, h.first, h.count
            ));
        }
        Ok(())
    }

    /// Delivers the results `h` announced (checked), in the received
    /// message `bytes`, to the piece's job.
    pub(super) fn deliver(&self, h: &ResultsHdr, bytes: Vec<u8>) {
        self.piece.job.deliver(Arrival::Results {
            first: self.piece.first + u64::from(h.first),
            count: h.count,
            fixed: h.fixed,
            bytes,
            at: RESULTS_HDR,
        });
    }

    /// Fails the tasks without results with `fail`.
    pub(super) fn fail_rest(&self, fail: &Fail) {
        for k in self.answered..self.piece.count() {
            self.piece.job.deliver(Arrival::Failed {
                index: self.piece.first + u64::from(k),
                fail: fail.clone(),
            });
        }
    }
}

/// The pieces one worker holds, in send order, and its service times.
pub(super) struct Lane<X = ()> {
    flights: VecDeque<Flight<X>>,
    /// Tasks without results in all of them.
    items: usize,
    /// `seq` of the next piece sent.
    next_seq: u32,
    /// When the worker last finished a piece (coarse milliseconds).
    last_done: u64,
    /// Service time of its last piece (coarse milliseconds).
    last_ms: u64,
}

impl<X> Lane<X> {
    pub(super) fn new() -> Lane<X> {
        Lane {
            flights: VecDeque::new(),
            items: 0,
            next_seq: 0,
            last_done: 0,
            last_ms: 0,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.flights.is_empty()
    }

    /// Pieces in flight.
    #[cfg(feature = "mpi")]
    pub(super) fn len(&self) -> usize {
        self.flights.len()
    }

    #[cfg(feature = "mpi")]
    pub(super) fn iter(&self) -> impl Iterator<Item = &Flight<X>> {
        self.flights.iter()
    }

    #[cfg(feature = "mpi")]
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Flight<X>> {
        self.flights.iter_mut()
    }

    /// Tasks in flight without results (the load dispatchers balance).
    pub(super) fn items(&self) -> usize {
        self.items
    }

    /// The `TASK` header of `piece` sent next (it gets `seq` `next_seq`).
    pub(super) fn task_hdr(&self, piece: &Piece) -> [u8; TASK_HDR] {
        TaskHdr {
            seq: self.next_seq,
            count: piece.count(),
            runner: piece.runner.0,
            hash: piece.runner.1,
            fixed: piece.fixed,
        }
        .encode()
    }

    /// Whether another piece may go to this worker: double-buffering for
    /// slow pieces, a deeper pipeline for tiny tasks and quick pieces (the
    /// state table in `docs/protocols/pool.md`, phase `Serving`).
    pub(super) fn has_room(&self) -> bool {
        let depth = self.flights.len();
        depth < 2
            || (self.last_ms <= SLOW_PIECE_MS
                && depth < 128
                && (self.items < 128 || (self.last_ms <= QUICK_PIECE_MS && depth < QUICK_DEPTH)))
    }

    /// Records `piece` as sent at `now` (coarse milliseconds) with `seq`
    /// `next_seq` (as its [`task_hdr`](Self::task_hdr) said), which then
    /// moves on.
    pub(super) fn push(&mut self, piece: Piece, extra: X, now: u64) {
        self.items += piece.count() as usize;
        self.flights.push_back(Flight {
            piece,
            seq: self.next_seq,
            answered: 0,
            sent: now,
            extra,
        });
        self.next_seq = self.next_seq.wrapping_add(1);
    }

    /// The piece the worker's next results must answer.
    pub(super) fn front_mut(&mut self) -> Option<&mut Flight<X>> {
        self.flights.front_mut()
    }

    /// Counts `count` more results of the front piece (already checked by
    /// [`Flight::check`]). When that completes it, records its service
    /// time (since it was sent, or since the piece before it finished if
    /// it waited behind that one; `now` is read only then) and returns it.
    pub(super) fn answer(&mut self, count: u32, now: impl FnOnce() -> u64) -> Option<Flight<X>> {
        let front = self.flights.front_mut()?;
        debug_assert!(count <= front.left(), "results were checked");
        front.answered += count;
        self.items -= count as usize;
        if front.answered < front.piece.count() {
            return None;
        }
        let now = now();
        self.last_ms = now.saturating_sub(front.sent.max(self.last_done));
        self.last_done = now;
        self.flights.pop_front()
    }

    /// Takes off the front piece (its worker gave up on it: `FATAL`); its
    /// tasks without results are the caller's to fail.
    pub(super) fn pop_front(&mut self) -> Option<Flight<X>> {
        let f = self.flights.pop_front()?;
        self.items -= f.left() as usize;
        Some(f)
    }

    /// Takes off every piece (the worker ended, or all work fails).
    pub(super) fn take_all(&mut self) -> VecDeque<Flight<X>> {
        self.items = 0;
        std::mem::take(&mut self.flights)
    }

    /// A new worker process serves the slot: its first piece is `seq` 0,
    /// and its service time is not known yet.
    pub(super) fn restart(&mut self) {
        self.next_seq = 0;
        self.last_ms = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::pool::job::Job;

    /// A piece of `count` scalar tasks of `job`, from job index `first`.
    fn piece(job: &Arc<Job>, first: u64, count: u32) -> Piece {
        Piece {
            job: job.clone(),
            first,
            runner: (0, 0),
            fixed: true,
            data: vec![0; count as usize * crate::pool::fixed::WIDTH],
            count,
            offsets: Vec::new(),
            retried: false,
        }
    }

    fn hdr(seq: u32, first: u32, count: u32) -> ResultsHdr {
        ResultsHdr {
            seq,
            first,
            count,
            fixed: true,
        }
    }

    /// (first, count) of each arrival at `job`, Failed as count 0.
    fn arrivals(job: &Job) -> Vec<(u64, u64)> {
        let ib = job.inbox.lock();
        ib.arrivals
            .iter()
            .map(|a| match a {
                Arrival::Results { .. } => (a.first(), a.count()),
                Arrival::Failed { .. } => (a.first(), 0),
            })
            .collect()
    }

    #[test]
    fn results_answer_the_front_in_order() {
        let job = Arc::new(Job::default());
        let mut lane: Lane<u8> = Lane::new();
        assert!(lane.front_mut().is_none());
        lane.push(piece(&job, 10, 3), 7, 100);
        lane.push(piece(&job, 13, 2), 8, 100);
        assert_eq!((lane.items(), lane.next_seq), (5, 2));
        let next = TaskHdr::decode(&lane.task_hdr(&piece(&job, 15, 1)))
            .unwrap()
            .0;
        assert_eq!((next.seq, next.count, next.fixed), (2, 1, true));

        let front = lane.front_mut().unwrap();
        assert_eq!((front.seq(), front.answered(), front.extra), (0, 0, 7));
        for bad in [hdr(1, 0, 1), hdr(0, 1, 1), hdr(0, 0, 4), hdr(0, 0, 0)] {
            assert!(front.check(&bad).is_err());
        }
        assert_eq!(
            front.check(&hdr(1, 2, 5)).unwrap_err(),
            "expected results of piece 0 from item 0 (at most 3), found piece 1 items 2+5"
        );
        let h = hdr(0, 0, 2);
        front.check(&h).unwrap();
        front.deliver(&h, vec![0; RESULTS_HDR + 16]);
        assert!(lane.answer(2, || unreachable!("not complete")).is_none());
        assert_eq!(lane.items(), 3);

        let front = lane.front_mut().unwrap();
        assert!(front.check(&hdr(0, 0, 1)).is_err(), "item 0 again");
        let h = hdr(0, 2, 1);
        front.check(&h).unwrap();
        let done = lane.answer(1, || 130).unwrap();
        assert_eq!((done.seq(), done.answered(), done.extra), (0, 3, 7));
        assert_eq!((lane.items(), lane.last_ms, lane.last_done), (2, 30, 130));

        // The second piece waited behind the first: timed from 130.
        lane.front_mut().unwrap().check(&hdr(1, 0, 2)).unwrap();
        let done = lane.answer(2, || 135).unwrap();
        assert_eq!((done.seq(), done.extra), (1, 8));
        assert_eq!((lane.items(), lane.last_ms), (0, 5));
        assert!(lane.is_empty());
        assert_eq!(arrivals(&job), vec![(10, 2)]);
    }

    #[test]
    fn room() {
        let job = Arc::new(Job::default());
        // Unknown or quick service time: up to 127 pieces of few tasks.
        let mut lane = Lane::new();
        for _ in 0..127 {
            assert!(lane.has_room());
            lane.push(piece(&job, 0, 1), (), 0);
        }
        assert!(lane.has_room());
        lane.push(piece(&job, 0, 1), (), 0);
        assert!(!lane.has_room(), "128 pieces");

        // Slow pieces: double-buffering only.
        let mut lane = Lane::new();
        lane.push(piece(&job, 0, 1), (), 0);
        lane.answer(1, || SLOW_PIECE_MS + 1).unwrap();
        lane.push(piece(&job, 0, 1), (), 50);
        assert!(lane.has_room());
        lane.push(piece(&job, 0, 1), (), 50);
        assert!(!lane.has_room());

        // Many tasks: 2 pieces, or QUICK_DEPTH while pieces are quick.
        for (ms, depth) in [(QUICK_PIECE_MS + 1, 2), (QUICK_PIECE_MS, QUICK_DEPTH)] {
            let mut lane = Lane::new();
            lane.push(piece(&job, 0, 1), (), 0);
            lane.answer(1, || ms).unwrap();
            for _ in 0..depth {
                assert!(lane.has_room());
                lane.push(piece(&job, 0, 200), (), ms);
            }
            assert!(!lane.has_room(), "{depth} pieces of {ms} ms");
        }
    }

    #[test]
    fn taken_off_pieces_stop_counting() {
        let job = Arc::new(Job::default());
        let mut lane = Lane::new();
        lane.push(piece(&job, 0, 4), (), 0);
        lane.push(piece(&job, 4, 2), (), 0);
        lane.push(piece(&job, 6, 1), (), 0);
        lane.front_mut().unwrap().check(&hdr(0, 0, 1)).unwrap();
        assert!(lane.answer(1, || 1).is_none());

        let f = lane.pop_front().unwrap();
        assert_eq!(lane.items(), 3);
        f.fail_rest(&Fail::Message("fatal".into()));
        assert_eq!(arrivals(&job), vec![(1, 0), (2, 0), (3, 0)]);

        let rest = lane.take_all();
        assert_eq!(rest.iter().map(Flight::seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!((lane.items(), lane.next_seq), (0, 3));
        lane.restart();
        assert_eq!(lane.next_seq, 0);
    }
}
