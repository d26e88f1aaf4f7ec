//! Batches (`put_many` / `get_many`): runs of consecutive slots.
//!
//! A run starts with an ordinary blocking claim and goes on claiming the
//! following positions directly (one CAS each, no hint traffic), publishing
//! or freeing each slot with a plain Release store instead of a CAS, and ends
//! with one hint store, one SeqCst fence and at most one wake-up
//! (`Ring::end_run`). Every claimed slot is filled and published (or read and
//! freed) before the next is claimed, so a run holds at most one slot at a
//! time and a panic in user code (encode/decode) leaves nothing claimed:
//! the run's end is a drop guard. See `docs/protocols/queue.md`, "Runs".

use super::block::{is_closed, Until};
use super::mapped::Chan;
use super::ring::{Attempt, Claim, Side};
use crate::error::{Error, Result};
use crate::sync::park::Futex;
use crate::sys::task::{self, TaskId};

/// Longest run before the hint moves and sleepers are woken.
const RUN: u32 = 256;

/// An open run: `n` slots handled, the next position to try is `next`.
struct Run<'c> {
    chan: &'c Chan,
    side: Side,
    next: u64,
    n: u32,
}

impl Run<'_> {
    /// Ends the run: hint, fence, one wake-up of the other side.
    fn end(&mut self) {
        if self.n > 0 {
            // Putting runs wake getters and move the tail; getting runs the
            // reverse.
            let wake = match self.side {
                Side::Put => Side::Get,
                Side::Get => Side::Put,
            };
            self.chan.ring().end_run(wake, self.next, self.n, &Futex);
            self.n = 0;
        }
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        self.end();
    }
}

impl Chan {
    /// Puts every message `encode` yields for `0..count` (calling it with
    /// the index and a sink for the bytes) in order, as runs of slots.
    /// Messages larger than a slot go through [`Chan::put`].
    pub(crate) fn put_batch(
        &self,
        count: usize,
        mut encode: impl FnMut(usize, &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()>,
    ) -> Result<()> {
        let gone = || false;
        let who = task::me();
        let mut run = Run {
            chan: self,
            side: Side::Put,
            next: 0,
            n: 0,
        };
        for i in 0..count {
            encode(i, &mut |bytes: &[u8]| {
                if bytes.len() as u64 > self.geo.data_size {
                    run.end();
                    return self.put(bytes, Until::Forever, &gone);
                }
                let c = self.claim_in_run(&mut run, who)?;
                self.fill(c, bytes);
                self.ring().publish(c, bytes.len() as u32, 0, &Futex);
                run.next = c.pos.wrapping_add(1);
                run.n += 1;
                if run.n >= RUN {
                    run.end();
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// The next slot of a putting run, or (run broken or not started) a
    /// blocking claim that starts a new run.
    #[inline]
    fn claim_in_run(&self, run: &mut Run<'_>, who: TaskId) -> Result<Claim> {
        if is_closed(&self.ring()) {
            return Err(Error::Closed);
        }
        if run.n > 0 && self.ring().try_claim_put_at(run.next, who) {
            return Ok(Claim {
                pos: run.next,
                // No NOTIFY: the run's end wakes getters (end_run).
                flags: 0,
            });
        }
        run.end();
        match self.claim(Side::Put, false, Until::Forever, &|| false)? {
            Attempt::Got(c) => Ok(c),
            _ => unreachable!("puts claim a slot or fail"),
        }
    }

    /// Takes up to `max` messages that are ready now (after blocking for the
    /// first one as `until` says), decoding each with `dec` straight from its
    /// slot, in runs, handing each item to `sink`. A decoding error ends
    /// the batch with that error (the items before it were handed over).
    /// Stops quietly at the first message that is not ready, or at a bulk
    /// message once one message was taken. Returns how many `dec` produced.
    #[inline]
    pub(crate) fn get_batch<R, D>(
        &self,
        max: usize,
        until: Until,
        dec: &mut D,
        mut sink: impl FnMut(R),
    ) -> Result<usize>
    where
        D: FnMut(usize, &mut dyn FnMut(&mut [u8])) -> Result<R>,
    {
        let who = task::me();
        let mut got = 0;
        let mut run = Run {
            chan: self,
            side: Side::Get,
            next: 0,
            n: 0,
        };
        while got < max {
            let next = if run.n > 0 {
                self.ring().try_claim_get_at(run.next, who)
            } else {
                None
            };
            let c = if let Some(c) = next {
                c
            } else if got > 0 && run.n > 0 {
                break;
            } else {
                run.end();
                // After the first item: whatever is there now, no waiting (not even
                // for a put in flight: the batch already has an item).
                let u = if got == 0 { until } else { Until::Poll };
                match self.claim(Side::Get, false, u, &|| false) {
                    Ok(Attempt::Got(c)) => c,
                    Ok(_) if got == 0 => {
                        // A bulk message first: the single-message path.
                        sink(self.get_with(u, &|| false, dec)?);
                        got += 1;
                        continue;
                    }
                    Ok(_) | Err(Error::Empty) | Err(Error::Closed) if got > 0 => break,
                    Err(e) => return Err(e),
                    Ok(_) => unreachable!("handled above"),
                }
            };
            run.next = c.pos.wrapping_add(1);
            run.n += 1;
            if let Some(r) = self.take_inline_with(c, dec)? {
                sink(r);
                got += 1;
            }
            if run.n >= RUN {
                run.end();
            }
        }
        Ok(got)
    }
}
