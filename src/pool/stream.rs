//! The blocking `map`/`starmap`: arguments encoded a window ahead of the
//! results, results decoded in input order as they arrive
//! (`docs/protocols/pool.md`, "Scheduling").
//!
//! `map_async` must encode every argument before it returns (it cannot keep
//! the caller's iterator). A blocking `map` can do better: its thread waits
//! anyway, so it encodes a few pieces per worker ahead and decodes each piece
//! of results as soon as it is next in order. Arguments and results never
//! all sit in memory at once (a million tiny tasks made 16 MB of short-lived
//! buffers, which the allocator returned to the kernel after each call and
//! faulted back in the next), and decoding overlaps the workers.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::backend::Backend;
use super::encode::Encoder;
use super::job::{self, Arrival, Job};
use crate::error::Result;

/// How far (in windows) encoding may run past the first unanswered task.
const MAX_WINDOWS: u64 = 8;

/// Cancels the job when the call ends, however it ends: pieces not sent
/// yet are dropped and late results are discarded.
struct CancelOnDrop<'a>(&'a Job);

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        // Relaxed: a hint; see `Job::deliver`.
        self.0.cancelled.store(true, Ordering::Relaxed);
    }
}

/// Runs the tasks of `input` (`n` of them, expected) and returns their results in
/// input order; the first failed task (lowest index) is the error.
pub(crate) fn map_in_order<A, R>(
    core: &dyn Backend,
    runner: (u64, u64),
    chunk: usize,
    mut input: impl Iterator<Item = A>,
    n: usize,
) -> Result<Vec<R>>
where
    A: Serialize,
    R: DeserializeOwned,
{
    let job = Arc::new(Job::default());
    let _cancel = CancelOnDrop(&job);
    let mut enc = Encoder::new(core, job.clone(), runner, chunk);
    let window = (core.pieces_ahead() * core.size() * enc.piece_items()).max(256) as u64;
    let mut out: Vec<R> = Vec::with_capacity(n);
    // Delivered ahead of `out.len()`, kept sorted by first index.
    let mut early: Vec<Arrival> = Vec::new();
    let mut batch: Vec<Arrival> = Vec::new();
    let mut exhausted = false;
    loop {
        // Swapped with a kept buffer: neither side reallocates per batch.
        let (fail, answered) = {
            let mut ib = job.inbox.lock();
            std::mem::swap(&mut ib.arrivals, &mut batch);
            (ib.fail.clone(), ib.answered)
        };
        early.append(&mut batch);
        early.sort_unstable_by_key(Arrival::first);
        // Top up by what is answered, in order or not (a slow piece holding
        // up the order does not starve the other workers, up to
        // `MAX_WINDOWS` windows past it), once half the window is answered
        // (whole pieces, not one at a time).
        let limit = (answered + window).min(out.len() as u64 + MAX_WINDOWS * window);
        if !exhausted && enc.next_index() + window / 2 <= limit {
            // The first fill sends a piece per worker before it encodes the
            // rest of the window, so no worker waits for that.
            let first = (enc.next_index() == 0).then(|| (core.size() * enc.piece_items()) as u64);
            for end in first.into_iter().chain([limit]) {
                if exhausted {
                    break;
                }
                exhausted = enc.push_upto(&mut input, end).map_err(|f| f.to_error())?;
                core.submit(&mut enc.finish());
            }
        }
        // The run of arrivals that continues `out`.
        let mut next = out.len() as u64;
        let run = early
            .iter()
            .take_while(|a| {
                let fits = a.first() == next;
                next += a.count();
                fits
            })
            .count();
        for a in early.drain(..run) {
            job::decode_in_order(a, &mut out)?;
        }
        // All of the input (a size hint can be wrong), all answered.
        if exhausted && out.len() as u64 == enc.next_index() {
            return Ok(out);
        }
        if let Some(f) = fail {
            // The next task in order has no result and none will come.
            return Err(f.to_error());
        }
        if run == 0 {
            // Any arrival: decode it, or at least count it for the top-up.
            core.wait_job(
                &job,
                &|ib| ib.fail.is_some() || !ib.arrivals.is_empty(),
                None,
            );
        }
    }
}
