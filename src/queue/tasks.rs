//! A joinable queue's count of unfinished tasks: items put and not yet
//! marked done. One [`WaitWord`] in the channel's front area (`chan/layout.rs`);
//! `join` sleeps on it until it reaches 0.

use std::time::Instant;

use crate::chan::Chan;
use crate::error::{Error, Result};
use crate::sync::atomic::Ordering;
use crate::sync::park::{Futex, Wake};
use crate::sync::wait::{self, WaitWord};

/// The task count of `chan`'s joinable queue.
pub(crate) fn count(chan: &Chan) -> &WaitWord {
    chan.front::<WaitWord>()
}

/// Counts one more task (before its item is put).
pub(crate) fn add_one(chan: &Chan) {
    // Relaxed: the count is published with the item (SYNC POINT: slot-full).
    count(chan).word().fetch_add(1, Ordering::Relaxed);
}

/// Marks `n` tasks done; wakes joiners when none is left. False (and
/// nothing changed) when fewer than `n` are unfinished.
pub(crate) fn done(chan: &Chan, n: u32) -> bool {
    let c = count(chan);
    // Relaxed load: the CAS below decides.
    let mut cur = c.word().load(Ordering::Relaxed);
    loop {
        if cur < n {
            return false;
        }
        // SYNC POINT: tasks-done. Release pairs with join's Acquire so a joiner
        // sees the consumers' work; SeqCst: the waker's change of the dekker
        // protocol (sync/wait.rs).
        match c
            .word()
            .compare_exchange_weak(cur, cur - n, Ordering::SeqCst, Ordering::Relaxed)
        {
            Ok(_) => break,
            Err(v) => cur = v,
        }
    }
    if cur == n {
        c.wake(&Futex, u32::MAX);
    }
    true
}

/// Items put and not yet marked done.
pub(crate) fn unfinished(chan: &Chan) -> u32 {
    // Acquire: SYNC POINT: tasks-done.
    count(chan).word().load(Ordering::Acquire)
}

/// Wakes every joiner after an immediate shutdown (they return: the
/// discarded items will never be marked done).
pub(crate) fn release_joiners(chan: &Chan) {
    // The shutdown's SeqCst store of the closed word is the waker's change
    // (SYNC POINT: dekker): a joiner's re-check after registering sees it.
    count(chan).wake(&Futex, u32::MAX);
}

/// Sleeps until no task is unfinished (or the queue was shut down
/// immediately), or `deadline`.
///
/// # Errors
/// `Timeout` when tasks remain unfinished at `deadline`.
pub(crate) fn join(chan: &Chan, deadline: Option<Instant>) -> Result<()> {
    let c = count(chan);
    let mut n = 0;
    loop {
        let cur = unfinished(chan);
        if cur == 0 || chan.is_discarding() {
            return Ok(());
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Err(Error::Timeout);
        }
        // Bounded slices: a consumer in a dead process never wakes us.
        let end = wait::slice_end(n, now, deadline);
        if c.sleep(&Futex, cur, end, || chan.is_discarding()) == Wake::TimedOut {
            n = n.saturating_add(1);
        }
    }
}
