//! Jobs: where the dispatcher delivers the results of one `map`, `imap` or
//! `apply` call, and where the caller's thread decodes them.
//!
//! The dispatcher handles bytes only (it is not generic); decoding into `R`
//! happens in the caller's thread, which knows `R`.

use std::sync::atomic::{fence, AtomicBool, Ordering};

use parking_lot::{Condvar, Mutex};
use serde::de::DeserializeOwned;

use super::worker::Outcome;
use crate::error::{Error, Result};
use crate::sync::park::Futex;
use crate::sync::wait::WaitWord;
use crate::wire;

/// Why a task has no result (cloneable, unlike [`Error`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fail {
    /// The worker holding it died.
    WorkerDied { pid: u32, signal: Option<i32> },
    /// The pool was terminated (or dropped) first.
    Closed,
    /// The task cannot run or the pool cannot serve: a message for `TaskPanicked`.
    Message(String),
    /// An argument or result above the ring's limit.
    TooLarge { size: usize, max: usize },
    /// An argument that does not encode.
    Codec {
        context: String,
        source: postcard::Error,
    },
}

impl Fail {
    pub(crate) fn to_error(&self) -> Error {
        match self {
            Fail::WorkerDied { pid, signal } => Error::WorkerDied {
                pid: *pid,
                signal: *signal,
            },
            Fail::Closed => Error::Closed,
            Fail::Message(m) => Error::TaskPanicked { message: m.clone() },
            Fail::TooLarge { size, max } => Error::MessageTooLarge {
                size: *size,
                max: *max,
            },
            Fail::Codec { context, source } => Error::codec(context, source.clone()),
        }
    }
}

/// Results delivered to a job.
#[derive(Debug)]
pub(crate) enum Arrival {
    /// Encoded outcomes of tasks `first..first + count` (postcard
    /// `Outcome`s, or 8-byte `Ok` scalars when `fixed`) in `bytes[at..]`
    /// (the worker's message as received: not moved to drop its header).
    Results {
        fixed: bool,
        first: u64,
        count: u32,
        bytes: Vec<u8>,
        at: usize,
    },
    /// Task `index` failed without an outcome.
    Failed { index: u64, fail: Fail },
}

impl Arrival {
    pub(crate) fn first(&self) -> u64 {
        match self {
            Arrival::Results { first, .. } => *first,
            Arrival::Failed { index, .. } => *index,
        }
    }

    pub(crate) fn count(&self) -> u64 {
        match self {
            Arrival::Results { count, .. } => u64::from(*count),
            Arrival::Failed { .. } => 1,
        }
    }
}

/// What the dispatcher has delivered and the caller has not taken yet.
#[derive(Debug, Default)]
pub(crate) struct Inbox {
    pub arrivals: Vec<Arrival>,
    /// Tasks answered so far (delivered, taken or not).
    pub answered: u64,
    /// Set when the pool stops serving: unanswered tasks fail with it.
    pub fail: Option<Fail>,
    /// Waiters are woken by a delivery only once `answered` reaches this
    /// (0: by every delivery, as `imap` wants; a `map` waits for all of
    /// them, and a wake-up per piece cost it a context switch each).
    pub wake_at: u64,
}

/// One call's share of the pool.
#[derive(Debug, Default)]
pub(crate) struct Job {
    pub inbox: Mutex<Inbox>,
    pub cv: Condvar,
    /// The caller has gone (an `imap` dropped early): results are dropped.
    pub cancelled: AtomicBool,
    /// Bumped (and woken, when someone sleeps on it) whenever the condvar is
    /// notified: what `shmproc::wait` and futures sleep on (in-process
    /// memory; a shared futex works on it too).
    pub done: WaitWord,
}

impl Job {
    /// Fails the job before (or instead of) any result: every waiter wakes
    /// and `get` returns `f`'s error.
    pub(crate) fn fail_now(&self, f: Fail) {
        let mut ib = self.inbox.lock();
        if ib.fail.is_none() {
            ib.fail = Some(f);
        }
        drop(ib);
        self.wake();
    }

    /// Wakes every waiter: condvar sleepers, and sleepers on `done`.
    fn wake(&self) {
        self.cv.notify_all();
        // SeqCst fence: the inbox change (made under the mutex) precedes the
        // waiter count's load (SYNC POINT: dekker, sync/wait.rs).
        fence(Ordering::SeqCst);
        self.done.notify(&Futex, u32::MAX);
    }

    pub(crate) fn deliver(&self, a: Arrival) {
        // Relaxed: a hint; a late delivery to a cancelled job is harmless.
        if self.cancelled.load(Ordering::Relaxed) {
            return;
        }
        let mut ib = self.inbox.lock();
        ib.answered += a.count();
        ib.arrivals.push(a);
        let wake = ib.answered >= ib.wake_at;
        drop(ib);
        if wake {
            self.wake();
        }
    }

    pub(crate) fn fail_all(&self, fail: &Fail) {
        let mut ib = self.inbox.lock();
        if ib.fail.is_none() {
            ib.fail = Some(fail.clone());
        }
        drop(ib);
        self.wake();
    }
}

/// Decodes an arrival into `(index, result)` pairs, in index order.
pub(crate) fn decode<R: DeserializeOwned>(a: Arrival, mut out: impl FnMut(u64, Result<R>)) {
    match a {
        Arrival::Failed { index, fail } => out(index, Err(fail.to_error())),
        Arrival::Results {
            first,
            count,
            fixed: true,
            bytes,
            at,
        } => {
            let bytes = bytes.get(at..).unwrap_or_default();
            for (i, b) in bytes.chunks_exact(super::fixed::WIDTH).enumerate() {
                let r = super::fixed::decode::<R>(b).map_err(|_| {
                    Error::codec(
                        format!("the result of task {}", first + i as u64),
                        postcard::Error::DeserializeBadEncoding,
                    )
                });
                out(first + i as u64, r);
            }
            let _ = count; // checked by the dispatcher: bytes.len() == 8 * count
        }
        Arrival::Results {
            first,
            count,
            fixed: false,
            bytes,
            at,
        } => {
            let mut rest = bytes.get(at..).unwrap_or_default();
            for i in 0..u64::from(count) {
                match wire::take_from_bytes::<Outcome<R>>(rest) {
                    Ok((o, r)) => {
                        rest = r;
                        out(first + i, outcome(o));
                    }
                    Err(e) => {
                        // The rest of this message cannot be framed either.
                        for j in i..u64::from(count) {
                            out(
                                first + j,
                                Err(Error::codec(
                                    format!("the result of task {}", first + j),
                                    e.clone(),
                                )),
                            );
                        }
                        return;
                    }
                }
            }
        }
    }
}

fn outcome<R>(o: Outcome<R>) -> Result<R> {
    match o {
        Outcome::Ok(r) => Ok(r),
        Outcome::Panicked(message) => Err(Error::TaskPanicked { message }),
        Outcome::TooLarge { size, max } => Err(Error::MessageTooLarge {
            size: size as usize,
            max: max as usize,
        }),
    }
}

/// Appends the results of `a`, which continues `out`, to `out`; a failed
/// task's error instead (results before it are appended).
pub(crate) fn decode_in_order<R: DeserializeOwned>(a: Arrival, out: &mut Vec<R>) -> Result<()> {
    if let Arrival::Results {
        fixed: true,
        first,
        ref bytes,
        at,
        ..
    } = a
    {
        return decode_scalars_into(bytes.get(at..).unwrap_or_default(), first, out);
    }
    let mut err = None;
    decode::<R>(a, |_, r| match r {
        Ok(v) if err.is_none() => out.push(v),
        Ok(_) => {}
        Err(e) => {
            err.get_or_insert(e);
        }
    });
    err.map_or(Ok(()), Err)
}

/// Appends the 8-byte scalar results of tasks `first..` in `bytes` to
/// `out` (a tight loop: `map` of tiny tasks spends its time here).
fn decode_scalars_into<R: DeserializeOwned>(
    bytes: &[u8],
    first: u64,
    out: &mut Vec<R>,
) -> Result<()> {
    out.reserve(bytes.len() / super::fixed::WIDTH);
    for (i, b) in bytes.chunks_exact(super::fixed::WIDTH).enumerate() {
        match super::fixed::decode::<R>(b) {
            Ok(v) => out.push(v),
            Err(_) => {
                return Err(Error::codec(
                    format!("the result of task {}", first + i as u64),
                    postcard::Error::DeserializeBadEncoding,
                ))
            }
        }
    }
    Ok(())
}

/// Decodes all of a finished job's `n` results in order; the first failed
/// task (lowest index) is the error.
pub(crate) fn collect<R: DeserializeOwned>(mut ib: Inbox, n: u64) -> Result<Vec<R>> {
    ib.arrivals.sort_unstable_by_key(Arrival::first);
    let mut out = Vec::with_capacity(n as usize);
    for a in ib.arrivals {
        if a.first() != out.len() as u64 {
            break; // a task before this one has no result: it failed first
        }
        decode_in_order(a, &mut out)?;
    }
    if (out.len() as u64) < n {
        return Err(ib.fail.map_or(Error::Closed, |f| f.to_error()));
    }
    Ok(out)
}

/// What a backend lends [`wait_job`]: how to move results along, and how
/// to tell its driver thread who pumps and who sleeps.
pub(crate) struct Pumping<'a> {
    /// Callers spinning now (the driver leaves the pumping to them).
    pub(crate) pumpers: &'a std::sync::atomic::AtomicUsize,
    /// Moves results along without waiting.
    pub(crate) pump: &'a dyn Fn(),
    /// A caller goes to sleep on a job (the driver pumps for it).
    pub(crate) add_sleeper: &'a dyn Fn(),
    /// The sleeper is back.
    pub(crate) remove_sleeper: &'a dyn Fn(),
    /// The spin phase before sleeping.
    pub(crate) spin: crate::sync::wait::Spin,
}

/// How a caller waits for a job, for every backend: pump the dispatcher
/// while spinning (counted in `pumpers` so the driver thread leaves the
/// pumping to us), then sleep on the job's condvar with the driver told
/// that someone sleeps (`add_sleeper`, undone by `remove_sleeper`), so it
/// moves the results along. Returns `done()`.
pub(crate) fn wait_job(
    job: &Job,
    done: &dyn Fn(&Inbox) -> bool,
    deadline: Option<std::time::Instant>,
    p: Pumping<'_>,
) -> bool {
    let Pumping {
        pumpers,
        pump,
        add_sleeper,
        remove_sleeper,
        mut spin,
    } = p;
    // Relaxed: a counter read as a hint by the driver thread.
    pumpers.fetch_add(1, Ordering::Relaxed);
    let mut met = false;
    loop {
        pump();
        if done(&job.inbox.lock()) {
            met = true;
            break;
        }
        if !spin.step_until(deadline) {
            break;
        }
    }
    // Relaxed: as above.
    pumpers.fetch_sub(1, Ordering::Relaxed);
    if met {
        return true;
    }
    add_sleeper();
    let mut ib = job.inbox.lock();
    let mut met = true;
    while !done(&ib) {
        match deadline {
            None => job.cv.wait(&mut ib),
            Some(d) => {
                if job.cv.wait_until(&mut ib, d).timed_out() {
                    met = done(&ib);
                    break;
                }
            }
        }
    }
    drop(ib);
    remove_sleeper();
    met
}
#[cfg(test)]
mod tests {
    use super::*;

    fn enc(items: &[Outcome<u32>]) -> Vec<u8> {
        let mut v = Vec::new();
        for i in items {
            postcard::to_io(i, &mut v).unwrap();
        }
        v
    }

    /// Postcard outcomes of tasks `first..` as one arrival.
    fn results(first: u64, items: &[Outcome<u32>]) -> Arrival {
        Arrival::Results {
            first,
            count: items.len() as u32,
            fixed: false,
            bytes: enc(items),
            at: 0,
        }
    }

    #[test]
    fn collect_orders_and_reports_first_error() {
        let mut ib = Inbox::default();
        ib.arrivals
            .push(results(2, &[Outcome::Ok(2), Outcome::Ok(3)]));
        ib.arrivals
            .push(results(0, &[Outcome::Ok(0), Outcome::Ok(1)]));
        assert_eq!(collect::<u32>(ib, 4).unwrap(), vec![0, 1, 2, 3]);

        let mut ib = Inbox::default();
        ib.arrivals.push(Arrival::Failed {
            index: 3,
            fail: Fail::WorkerDied {
                pid: 5,
                signal: Some(9),
            },
        });
        ib.arrivals.push(results(
            0,
            &[
                Outcome::Ok(0),
                Outcome::Panicked("p".into()),
                Outcome::Ok(2),
            ],
        ));
        assert!(
            matches!(collect::<u32>(ib, 4), Err(Error::TaskPanicked { message }) if message == "p")
        );
    }

    #[test]
    fn missing_results_take_the_jobs_failure() {
        let ib = Inbox {
            fail: Some(Fail::Closed),
            ..Inbox::default()
        };
        assert!(matches!(collect::<u32>(ib, 1), Err(Error::Closed)));
        // Task 2 has no result: it is the lowest failure, not task 5.
        let mut ib = Inbox {
            fail: Some(Fail::Closed),
            ..Inbox::default()
        };
        ib.arrivals.push(Arrival::Failed {
            index: 5,
            fail: Fail::Message("five".into()),
        });
        ib.arrivals
            .push(results(0, &[Outcome::Ok(0), Outcome::Ok(1)]));
        assert!(matches!(collect::<u32>(ib, 6), Err(Error::Closed)));
    }

    #[test]
    fn garbage_bytes_are_codec_errors() {
        let mut got = Vec::new();
        decode::<String>(
            Arrival::Results {
                first: 0,
                count: 2,
                fixed: false,
                bytes: vec![0, 200],
                at: 0,
            },
            |i, r| got.push((i, r.is_err())),
        );
        assert_eq!(got, vec![(0, true), (1, true)]);
    }
}
