//! [`Encoder`]: a call's arguments cut into pieces (`docs/protocols/pool.md`,
//! "Scheduling"): at most `chunk` tasks and about 64 KiB each, one format
//! per piece (8-byte scalars or postcard).

use std::sync::Arc;

use serde::Serialize;

use super::backend::Backend;
use super::dispatch::Piece;
use super::fixed;
use super::job::{Fail, Job};
use crate::segment::transfer;
use crate::wire;

/// Encoded arguments per piece at most (a piece may hold one larger item).
const PIECE_BYTES: usize = 64 * 1024;

/// Cuts encoded arguments into pieces of at most `chunk` tasks and about
/// [`PIECE_BYTES`] bytes.
pub(crate) struct Encoder {
    job: Arc<Job>,
    runner: (u64, u64),
    chunk: usize,
    max_arg: usize,
    next: u64,
    cur: Option<Piece>,
    pub(crate) ready: Vec<Piece>,
}

fn new_piece(job: &Arc<Job>, runner: (u64, u64), first: u64) -> Piece {
    Piece {
        job: job.clone(),
        first,
        runner,
        fixed: false,
        data: Vec::new(),
        count: 0,
        offsets: Vec::new(),
        retried: false,
    }
}

impl Encoder {
    pub(crate) fn new(
        core: &dyn Backend,
        job: Arc<Job>,
        runner: (u64, u64),
        chunk: usize,
    ) -> Encoder {
        Encoder::with_limit(core.max_arg(), job, runner, chunk)
    }

    /// An encoder whose arguments may be at most `max_arg` bytes.
    fn with_limit(max_arg: usize, job: Arc<Job>, runner: (u64, u64), chunk: usize) -> Encoder {
        Encoder {
            job,
            runner,
            chunk: chunk.max(1),
            max_arg,
            next: 0,
            cur: None,
            ready: Vec::new(),
        }
    }

    /// Encodes the next task's argument: 8 raw bytes if it is a scalar and
    /// the piece is in that format, postcard otherwise (a scalar piece that
    /// meets a non-scalar is cut, so each piece has one format).
    #[inline]
    pub(crate) fn push<A: Serialize>(&mut self, a: &A) -> std::result::Result<(), Fail> {
        let fx = fixed::encode(a);
        // Fast path: a scalar into a scalar piece with room (most tasks of a
        // scalar map): append 8 bytes, no other bookkeeping.
        if let (Some(bytes), Some(p)) = (fx, self.cur.as_mut()) {
            if p.fixed && (p.count as usize) + 1 < self.chunk && p.data.len() + 8 < PIECE_BYTES {
                p.data.extend_from_slice(&bytes);
                p.count += 1;
                self.next += 1;
                return Ok(());
            }
        }
        self.push_slow(a, fx)
    }

    /// Encodes every argument of `it`, handing finished pieces to `submit`
    /// four at a time (the rest stay in `ready` for [`finish`](Self::finish)).
    pub(crate) fn push_all<A: Serialize>(
        &mut self,
        mut it: impl Iterator<Item = A>,
        mut submit: impl FnMut(&mut Vec<Piece>),
    ) -> std::result::Result<(), Fail> {
        loop {
            let ended = self.push_upto(&mut it, self.next + 4 * self.piece_items() as u64)?;
            if self.ready.len() >= 4 {
                submit(&mut self.ready);
            }
            if ended {
                return Ok(());
            }
        }
    }

    /// Encodes arguments from `it` until task `end` (exclusive) or the end
    /// of `it`; returns whether `it` ended.
    pub(crate) fn push_upto<A: Serialize>(
        &mut self,
        it: &mut impl Iterator<Item = A>,
        end: u64,
    ) -> std::result::Result<bool, Fail> {
        while self.next < end {
            let Some(a) = it.next() else {
                return Ok(true);
            };
            self.push(&a)?;
            let left = end.saturating_sub(self.next);
            let mut bounded = it
                .by_ref()
                .take(usize::try_from(left).unwrap_or(usize::MAX));
            if let Some(odd) = self.fill_scalars(&mut bounded) {
                self.push(&odd)?;
            }
        }
        Ok(false)
    }

    /// Tasks in a full piece of scalars: a whole piece's worth of work.
    pub(crate) fn piece_items(&self) -> usize {
        self.chunk.min(PIECE_BYTES / fixed::WIDTH)
    }

    /// Appends scalar arguments from `it` to the current scalar piece while
    /// it has room, counting in locals (per-item bookkeeping in `self` made
    /// each task a chain of store-to-load forwards); cuts the piece when
    /// full. Returns an argument it took but that is not a scalar.
    fn fill_scalars<A: Serialize>(&mut self, it: &mut impl Iterator<Item = A>) -> Option<A> {
        let p = self.cur.as_mut().filter(|p| p.fixed)?;
        let room = (self.chunk - (p.count as usize).min(self.chunk))
            .min(PIECE_BYTES.saturating_sub(p.data.len()) / fixed::WIDTH);
        let mut data = std::mem::take(&mut p.data);
        data.reserve(room * fixed::WIDTH);
        let mut taken = 0;
        let mut odd = None;
        while taken < room {
            let Some(a) = it.next() else { break };
            let Some(bytes) = fixed::encode(&a) else {
                odd = Some(a);
                break;
            };
            data.extend_from_slice(&bytes);
            taken += 1;
        }
        p.data = data;
        p.count += taken as u32;
        self.next += taken as u64;
        if p.count as usize >= self.chunk || p.data.len() >= PIECE_BYTES {
            self.cut();
        }
        odd
    }

    /// [`push`](Self::push) for everything but the fast path.
    fn push_slow<A: Serialize>(
        &mut self,
        a: &A,
        fx: Option<[u8; fixed::WIDTH]>,
    ) -> std::result::Result<(), Fail> {
        let index = self.next;
        if self.cur.as_ref().is_some_and(|p| p.fixed && fx.is_none()) {
            self.cut();
        }
        let chunk = self.chunk;
        let p = self.cur.get_or_insert_with(|| {
            let mut p = new_piece(&self.job, self.runner, index);
            p.fixed = fx.is_some();
            if p.fixed {
                // A scalar piece's size is known: no regrowth while filling.
                p.data
                    .reserve_exact(chunk.saturating_mul(fixed::WIDTH).min(PIECE_BYTES));
            }
            p
        });
        let offset = match fx {
            Some(bytes) if p.fixed => {
                let mark = p.data.len();
                p.data.extend_from_slice(&bytes);
                mark
            }
            _ => self.encode_slow(a, index)?,
        };
        let Some(p) = self.cur.as_mut() else {
            return Ok(());
        };
        if !p.fixed {
            if p.count == 1 {
                p.offsets.push(0); // the first task's offset, kept implicit so far
            }
            if p.count >= 1 {
                p.offsets.push(offset as u32);
            }
        }
        p.count += 1;
        self.next += 1;
        if p.count as usize >= self.chunk || p.data.len() >= PIECE_BYTES {
            self.cut();
        }
        Ok(())
    }

    /// Postcard-encodes `a` at the end of the current piece (cutting first
    /// if it would not fit with the tasks before it); returns its offset.
    fn encode_slow<A: Serialize>(&mut self, a: &A, index: u64) -> std::result::Result<usize, Fail> {
        let Some(p) = self.cur.as_mut() else {
            return Ok(0);
        };
        let mark = p.data.len();
        if let Err(e) = wire::to_extend(a, &mut p.data) {
            p.data.truncate(mark);
            // A handle that cannot travel (an anonymous one) says why.
            let why = transfer::why_encode_fails(a).map_or_else(String::new, |h| format!(" ({h})"));
            return Err(Fail::Codec {
                context: format!("the argument of task {index}{why}"),
                source: e,
            });
        }
        let size = p.data.len() - mark;
        if size > self.max_arg {
            p.data.truncate(mark);
            return Err(Fail::TooLarge {
                size,
                max: self.max_arg,
            });
        }
        if p.data.len() > self.max_arg {
            // Fits alone, not with the tasks before it: start a new piece.
            let bytes = p.data.split_off(mark);
            self.cut();
            let p = self.cur.insert(new_piece(&self.job, self.runner, index));
            p.data = bytes;
            return Ok(0);
        }
        Ok(mark)
    }

    /// Ends the current piece (if any).
    pub(crate) fn cut(&mut self) {
        if let Some(p) = self.cur.take() {
            if p.count > 0 {
                self.ready.push(p);
            }
        }
    }

    /// All pieces not yet taken (drained: `ready` keeps its capacity for
    /// the next round).
    pub(crate) fn finish(&mut self) -> std::vec::Drain<'_, Piece> {
        self.cut();
        self.ready.drain(..)
    }

    /// Index of the next task.
    pub(crate) fn next_index(&self) -> u64 {
        self.next
    }

    /// Skips an index (a task whose argument failed to encode).
    pub(crate) fn skip(&mut self) {
        self.cut();
        self.next += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value that is a scalar or not, per instance.
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum Mixed {
        Num(u64),
        Text(String),
    }

    fn offsets(p: &Piece) -> Vec<usize> {
        (0..=p.count()).map(|k| p.offset(k)).collect()
    }

    #[test]
    fn one_format_per_piece_and_consecutive_indexes() {
        let job = Arc::new(Job::default());
        let mut e = Encoder::with_limit(1 << 20, job, (0, 0), 100);
        let items = [
            Mixed::Num(1),
            Mixed::Num(2),
            Mixed::Text("ab".into()),
            Mixed::Num(3),
            Mixed::Text("c".into()),
        ];
        for it in &items {
            e.push(it).unwrap();
        }
        let pieces: Vec<Piece> = e.finish().collect();
        // Scalars until the first text, then postcard for the rest.
        assert_eq!(pieces.len(), 2);
        assert!(pieces[0].fixed && !pieces[1].fixed);
        assert_eq!((pieces[0].first, pieces[0].count()), (0, 2));
        assert_eq!((pieces[1].first, pieces[1].count()), (2, 3));
        assert_eq!(offsets(&pieces[0]), [0, 8, 16]);
        assert_eq!(pieces[1].data, [2, b'a', b'b', 3, 1, b'c']);
        assert_eq!(offsets(&pieces[1]), [0, 3, 4, 6]);
        // A sub-piece keeps its bytes and offsets.
        let sub = pieces[1].sub(1, 3);
        assert_eq!((sub.first, sub.count(), sub.retried), (3, 2, true));
        assert_eq!(sub.data, [3, 1, b'c']);
        assert_eq!(offsets(&sub), [0, 1, 3]);
    }

    #[test]
    fn push_upto_stops_at_its_end_and_cuts_at_format_changes() {
        let job = Arc::new(Job::default());
        let mut e = Encoder::with_limit(1 << 20, job, (0, 0), 4);
        // Scalars, a text in the middle of a run, scalars again.
        let mut items = (0..12u64).map(|i| {
            if i == 5 {
                Mixed::Text("x".into())
            } else {
                Mixed::Num(i)
            }
        });
        assert!(!e.push_upto(&mut items, 7).unwrap());
        assert_eq!(e.next_index(), 7);
        assert!(e.push_upto(&mut items, 100).unwrap(), "the input ended");
        assert_eq!(e.next_index(), 12);
        let pieces: Vec<Piece> = e.finish().collect();
        let shape: Vec<(bool, u64, u32)> = pieces
            .iter()
            .map(|p| (p.fixed, p.first, p.count()))
            .collect();
        // Pieces of at most 4 (the chunk), one format each: the text starts
        // a postcard piece that the scalars after it join until it is full;
        // a new piece takes the format of its first argument.
        assert_eq!(
            shape,
            [(true, 0, 4), (true, 4, 1), (false, 5, 4), (true, 9, 3)]
        );
        assert_eq!(&pieces[1].data[..], &4u64.to_le_bytes());
    }

    #[test]
    fn chunks_sizes_and_limits() {
        let job = Arc::new(Job::default());
        let mut e = Encoder::with_limit(100, job, (0, 0), 3);
        for i in 0..7u64 {
            e.push(&i).unwrap();
        }
        let counts: Vec<u32> = e.finish().map(|p| p.count()).collect();
        assert_eq!(counts, [3, 3, 1]);
        // An argument above the limit fails alone; one that fits only by
        // itself starts a new piece.
        let job = Arc::new(Job::default());
        let mut e = Encoder::with_limit(100, job, (0, 0), 10);
        assert!(matches!(
            e.push(&vec![0u8; 200]),
            Err(Fail::TooLarge { .. })
        ));
        e.skip();
        e.push(&vec![1u8; 60]).unwrap();
        e.push(&vec![2u8; 60]).unwrap();
        let pieces: Vec<Piece> = e.finish().collect();
        assert_eq!(pieces.len(), 2);
        assert_eq!((pieces[0].first, pieces[0].count()), (1, 1));
        assert_eq!((pieces[1].first, pieces[1].count()), (2, 1));
        assert_eq!(pieces[1].data.len(), 61);
    }
}
