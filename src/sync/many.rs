//! Waiting on several objects at once: [`wait`] (Python's
//! `multiprocessing.connection.wait`) and the [`Waitable`] trait every
//! waitable object implements. Protocol: `docs/protocols/wait.md`,
//! "Waiting on many".
//!
//! Each object names the futex word that changes when it may have become
//! ready (a queue's getters' wait word, an event's flag, a child's exit
//! word, a pool job's done word) and registers as a sleeper there the way a
//! blocking call does, so its wakers wake us; then one `futex_waitv` sleeps
//! on all the words at once. More words than one call takes are split over
//! short-lived helper threads, each sleeping on its share plus a word that
//! ends them all.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sync::wait::{self, Spin, WaitWord};
use crate::sys::futex::{self, ManyOutcome, WAITV_MAX};

/// What an object's readiness check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Ready now (an item can be taken, the other end is gone, ...).
    Ready,
    /// Not ready; a waker will change the armed word when that changes.
    Pending,
    /// Not ready, but a change is under way whose waker may not see our
    /// registration (a queue's head slot being written): sleep briefly.
    Soon,
}

/// An object's futex word armed for a sleep: the value to sleep on, the
/// registration in the word's sleeper count (for wait words), and what keeps
/// the memory mapped. Owned, so the async reactor can hold it across polls;
/// dropping it unregisters.
pub struct Armed {
    word: NonNull<AtomicU32>,
    seen: u32,
    counted: Option<NonNull<WaitWord>>,
    on_drop: Option<Box<dyn FnOnce() + Send>>,
    _keep: Box<dyn std::any::Any + Send + Sync>,
}

// SAFETY: the pointers target memory that `_keep` (Send + Sync) keeps alive,
// accessed only through atomics.
unsafe impl Send for Armed {}
// SAFETY: as for Send; `&Armed` hands out only `&AtomicU32`.
unsafe impl Sync for Armed {}

impl std::fmt::Debug for Armed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Armed").field("seen", &self.seen).finish()
    }
}

impl Armed {
    /// Arms a wait word whose wakers count sleepers: reads the value to
    /// sleep on, then registers (SYNC POINT: dekker). `keep` keeps `ww`'s
    /// memory alive (a segment handle, an `Arc`).
    pub(crate) fn counted(ww: &WaitWord, keep: impl std::any::Any + Send + Sync) -> Armed {
        let seen = ww.seen();
        std::mem::forget(ww.register());
        Armed {
            word: NonNull::from(ww.word()),
            seen,
            counted: Some(NonNull::from(ww)),
            on_drop: None,
            _keep: Box::new(keep),
        }
    }

    /// Arms a word that changes without a sleeper count (the kernel's write
    /// of a child's exit word): sleep while it holds `seen`.
    pub(crate) fn plain(
        word: &AtomicU32,
        seen: u32,
        keep: impl std::any::Any + Send + Sync,
    ) -> Armed {
        Armed {
            word: NonNull::from(word),
            seen,
            counted: None,
            on_drop: None,
            _keep: Box::new(keep),
        }
    }

    /// Runs `f` when the arm is dropped (the sleep is over).
    pub(crate) fn on_drop(mut self, f: impl FnOnce() + Send + 'static) -> Armed {
        self.on_drop = Some(Box::new(f));
        self
    }

    /// The futex word.
    pub(crate) fn word(&self) -> &AtomicU32 {
        // SAFETY: `_keep` keeps the word's memory alive as long as `self`.
        unsafe { self.word.as_ref() }
    }

    /// The value to sleep on.
    pub(crate) fn seen(&self) -> u32 {
        self.seen
    }

    /// Whether the word moved from the armed value.
    pub(crate) fn changed(&self) -> bool {
        // Relaxed: the owner re-checks the object's readiness itself.
        self.word().load(Ordering::Relaxed) != self.seen
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        if let Some(ww) = self.counted {
            // SAFETY: as in `word`: `_keep` is dropped after this body.
            unsafe { ww.as_ref() }.unregister();
        }
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}

pub(crate) mod sealed {
    use super::{Armed, Readiness};

    /// The waiting protocol of an object (crate-internal: the public
    /// [`Waitable`](super::Waitable) names no method).
    pub trait WaitSource {
        /// The cheap check (no syscall): shared words only.
        fn readiness(&self) -> Readiness;
        /// The check made at slice ends, which may read `/proc` or poll a
        /// pidfd (a peer that died never changes a word).
        fn ready_slow(&self) -> bool {
            self.readiness() == Readiness::Ready
        }
        /// Arms the object's word (see [`Armed`]); the caller re-checks
        /// [`readiness`](Self::readiness) after arming and sleeps only if
        /// it is still not ready.
        fn arm(&self) -> Armed;
    }
}

impl<S: sealed::WaitSource + ?Sized> sealed::WaitSource for &S {
    fn readiness(&self) -> Readiness {
        (**self).readiness()
    }
    fn ready_slow(&self) -> bool {
        (**self).ready_slow()
    }
    fn arm(&self) -> Armed {
        (**self).arm()
    }
}

/// Something [`wait`] can wait for: implemented by [`Queue`](crate::Queue)
/// and [`JoinableQueue`](crate::JoinableQueue) (an item can be got, or the
/// queue is closed), [`Connection`](crate::Connection) and
/// [`Receiver`](crate::Receiver) (a message can be received, or the other end
/// is gone), [`Process`](crate::Process) (it has exited),
/// [`Event`](crate::Event) (it is set) and [`AsyncResult`](crate::AsyncResult)
/// (it is ready). Not implementable outside shmproc.
pub trait Waitable: sealed::WaitSource {}

impl<T: sealed::WaitSource + ?Sized> Waitable for T {}

/// Waits until at least one of `objects` is ready, or `timeout` passes
/// (`None`: as long as it takes), and returns the indices of every object
/// ready when it returns, in order (`[]` on timeout), as Python's
/// `multiprocessing.connection.wait`.
///
/// Readiness is a hint, as with Python: another consumer may take the item
/// first, so a non-blocking call after `wait` may still say `Empty`. The
/// calling thread spins briefly, then sleeps in the kernel on every object's
/// futex word at once (`futex_waitv`) and wakes on any of them; it re-checks
/// peers' liveness at slice ends (10 ms growing to 50 ms), since a dead peer
/// never wakes anyone. More objects than one kernel call takes (127) are
/// split over helper threads that live for the call.
///
/// # Errors
/// `Io` (`ENOSYS`) on a kernel without `futex_waitv` (before 5.16).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let jobs = shmproc::Queue::<u32>::new(4)?;
/// let done = shmproc::Event::new()?;
/// let objs: [&dyn shmproc::Waitable; 2] = [&jobs, &done];
/// assert!(shmproc::wait(&objs, Some(Duration::from_millis(5)))?.is_empty());
/// done.set();
/// assert_eq!(shmproc::wait(&objs, None)?, vec![1]);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> Result<Vec<usize>> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    wait_deadline(objects, deadline)
}

/// [`wait`] with an absolute deadline.
pub(crate) fn wait_deadline(
    objects: &[&dyn Waitable],
    deadline: Option<Instant>,
) -> Result<Vec<usize>> {
    let ready = |slow: bool| -> Vec<usize> {
        (0..objects.len())
            .filter(|&i| {
                objects[i].readiness() == Readiness::Ready || (slow && objects[i].ready_slow())
            })
            .collect()
    };
    let mut spin = Spin::new();
    loop {
        let r = ready(false);
        if !r.is_empty() || objects.is_empty() {
            return Ok(r);
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Ok(ready(true));
        }
        if !spin.step_at(now) {
            break;
        }
    }
    // Before sleeping, once: what only slow checks see (an exited child, a
    // peer that died).
    let r = ready(true);
    if !r.is_empty() {
        return Ok(r);
    }
    if !futex::has_waitv() {
        return Err(Error::os(
            "waiting on several objects",
            std::io::Error::from_raw_os_error(libc::ENOSYS),
        ));
    }
    let mut slices = 0;
    loop {
        let now = Instant::now();
        let mut end = wait::slice_end(slices, now, deadline);
        let armed: Vec<Armed> = objects.iter().map(|o| o.arm()).collect();
        // Re-check after arming: a change made before our registration is
        // seen here; one made after it wakes the futex (SYNC POINT: dekker).
        let mut soon = false;
        let mut r = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            match o.readiness() {
                Readiness::Ready => r.push(i),
                Readiness::Soon => soon = true,
                Readiness::Pending => {}
            }
        }
        if !r.is_empty() {
            return Ok(r);
        }
        if soon {
            // A nap, as the queue's own getters take (docs/protocols/queue.md).
            let nap = now + Duration::from_micros(50 << slices.min(10));
            end = Some(end.map_or(nap, |e| e.min(nap)));
        }
        let words: Vec<(&AtomicU32, u32)> = armed.iter().map(|a| (a.word(), a.seen())).collect();
        let outcome = sleep_on(&words, end);
        drop(armed);
        if outcome == ManyOutcome::TimedOut {
            slices = slices.saturating_add(1);
            let r = ready(true);
            if !r.is_empty() || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(r);
            }
        } else {
            let r = ready(false);
            if !r.is_empty() {
                return Ok(r);
            }
        }
    }
}

/// Sleeps until one of `words` changes or is woken, or `end`. Up to
/// [`WAITV_MAX`] words: one `futex_waitv`. More: the calling thread sleeps
/// on the first share plus a relay word, helper threads on the others plus
/// a stop word; the first to wake bumps both, and every helper is joined
/// before returning.
fn sleep_on(words: &[(&AtomicU32, u32)], end: Option<Instant>) -> ManyOutcome {
    if words.len() <= WAITV_MAX {
        return futex::wait_many(words, end);
    }
    // Each call takes its share and one control word.
    let share = WAITV_MAX - 1;
    let relay = AtomicU32::new(0);
    let stop = AtomicU32::new(0);
    let ring = |w: &AtomicU32| {
        // SeqCst: the bump precedes the wake, and every sleeper's futex
        // compares against the value it read before sleeping.
        w.fetch_add(1, Ordering::SeqCst);
        futex::wake(w, u32::MAX);
    };
    std::thread::scope(|s| {
        for chunk in words[share..].chunks(share) {
            let (relay, stop) = (&relay, &stop);
            s.spawn(move || {
                let mut mine: Vec<(&AtomicU32, u32)> = chunk.to_vec();
                mine.push((stop, 0));
                if futex::wait_many(&mine, end) != ManyOutcome::TimedOut {
                    ring(relay);
                }
            });
        }
        let mut mine: Vec<(&AtomicU32, u32)> = words[..share].to_vec();
        mine.push((&relay, 0));
        let outcome = futex::wait_many(&mine, end);
        ring(&stop);
        // A helper's wake counts as ours (it rang the relay word).
        outcome
    })
}
