//! The async side of waiting: one helper thread per process, started by the
//! first future that has to wait and gone when none waits, sleeping in
//! `futex_waitv` on every armed word and waking the wakers of the futures
//! whose word moved. No thread and no file descriptor per object or future;
//! no executor: std `Future` and `Waker` only. Protocol:
//! `docs/protocols/wait.md`, "Async".
//!
//! A future ([`Wait`]) first tries its operation; if it would block it arms
//! its object's word (registering as a sleeper, as a blocking call does),
//! re-checks, and hands the armed word and its waker to the reactor. Nothing
//! is claimed until an attempt succeeds inside `poll`, so dropping a pending
//! future loses nothing (cancel-safe, as tokio's `Notify`).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::Result;
use crate::sync::many::sealed::WaitSource;
use crate::sync::many::{Armed, Readiness};
use crate::sync::wait::{self, Spin};
use crate::sys::futex::{self, WAITV_MAX};

/// How long the reactor thread stays after the last pending future, so a
/// future that waits again soon does not start a new thread.
const LINGER: Duration = Duration::from_millis(200);

/// How often the reactor looks at armed words beyond what one `futex_waitv`
/// takes (more than 127 futures pending at once).
const OVERFLOW_LOOK: Duration = Duration::from_millis(2);

/// One pending future's registration.
struct Entry {
    /// Which registration this is (slots are reused: a stale key must not
    /// reach the next registration in the same slot).
    id: u64,
    armed: Armed,
    waker: Waker,
    /// When the future's current sleep slice ends: its waker runs then so
    /// it re-checks what no word reports (a peer's death).
    slice_end: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    entries: Vec<Option<Entry>>,
    free: Vec<usize>,
    live: usize,
    /// A reactor thread runs (or is about to).
    running: bool,
    /// The process these registrations belong to (0: none yet). A child
    /// made by `fork` inherits the parent's registrations but not its
    /// thread.
    pid: u32,
}

impl Inner {
    /// Starts afresh in a child made by `fork`: the inherited entries are
    /// the parent's futures, which this process cannot poll. They are
    /// forgotten, not dropped: dropping would unregister the parent's
    /// sleepers from shared words and run the parent's wakers here.
    #[cold]
    fn after_fork(&mut self, pid: u32) {
        for e in std::mem::take(&mut self.entries).into_iter().flatten() {
            std::mem::forget(e);
        }
        self.free.clear();
        self.live = 0;
        self.running = false;
        self.pid = pid;
    }
}

/// The process's reactor.
struct Reactor {
    inner: Mutex<Inner>,
    /// Bumped (and woken) when registrations change, so the thread re-reads
    /// them; the thread sleeps on it with the armed words.
    bell: AtomicU32,
}

fn reactor() -> &'static Reactor {
    static R: OnceLock<Reactor> = OnceLock::new();
    R.get_or_init(|| Reactor {
        inner: Mutex::new(Inner::default()),
        bell: AtomicU32::new(0),
    })
}

/// A registration with the reactor: its slot and its id.
struct Key(usize, u64);

impl Reactor {
    fn ring(&self) {
        // SeqCst: the bump precedes the wake; the thread compares against
        // the value it read before re-reading the registrations.
        self.bell.fetch_add(1, Ordering::SeqCst);
        futex::wake(&self.bell, 1);
    }

    fn register(&'static self, armed: Armed, waker: &Waker, slice_end: Option<Instant>) -> Key {
        let mut g = self.inner.lock();
        let pid = std::process::id();
        if g.pid != pid {
            g.after_fork(pid);
        }
        g.next_id += 1;
        let id = g.next_id;
        let e = Entry {
            id,
            armed,
            waker: waker.clone(),
            slice_end,
        };
        let i = match g.free.pop() {
            Some(i) => {
                g.entries[i] = Some(e);
                i
            }
            None => {
                g.entries.push(Some(e));
                g.entries.len() - 1
            }
        };
        g.live += 1;
        let start = !g.running;
        g.running = true;
        drop(g);
        if start {
            let spawned = std::thread::Builder::new()
                .name("shmproc-reactor".into())
                .spawn(move || self.run());
            if spawned.is_err() {
                // No thread: fall back to waking the future at once (it
                // polls again: degraded to polling, never lost).
                self.inner.lock().running = false;
                waker.wake_by_ref();
            }
        } else {
            self.ring();
        }
        Key(i, id)
    }

    /// Replaces the waker of a registration still pending; false if it
    /// fired (the entry is gone).
    fn update(&self, key: &Key, waker: &Waker) -> bool {
        let mut g = self.inner.lock();
        match g.entries.get_mut(key.0).and_then(Option::as_mut) {
            Some(e) if e.id == key.1 => {
                if !e.waker.will_wake(waker) {
                    e.waker = waker.clone();
                }
                true
            }
            _ => false,
        }
    }

    fn deregister(&self, key: Key) {
        let mut g = self.inner.lock();
        let slot = g.entries.get_mut(key.0);
        let e = match slot {
            Some(s) if s.as_ref().is_some_and(|e| e.id == key.1) => s.take(),
            _ => None,
        };
        if e.is_some() {
            g.live -= 1;
            g.free.push(key.0);
        }
        drop(g);
        // Dropped outside the lock: unregistering touches shared memory.
        drop(e);
    }

    /// The thread: sleep on every armed word (and the bell), wake the
    /// futures whose word moved or whose slice ended; exit when none waits.
    fn run(&'static self) {
        let mut idle_since: Option<Instant> = None;
        loop {
            // Read before the registrations: a change made after this read
            // moves the bell and ends the sleep below at once.
            let bell = self.bell.load(Ordering::SeqCst);
            let (words, end, overflow) = {
                let mut g = self.inner.lock();
                if g.live == 0 {
                    let now = Instant::now();
                    let since = *idle_since.get_or_insert(now);
                    if now.duration_since(since) >= LINGER {
                        g.running = false;
                        g.entries.clear();
                        g.free.clear();
                        return;
                    }
                    drop(g);
                    // Linger a little: a future that waits again soon (an
                    // idle consumer woken item by item) finds us running.
                    crate::sys::futex::wait(&self.bell, bell, Some(since + LINGER));
                    continue;
                }
                idle_since = None;
                let mut words: Vec<(usize, u32)> = vec![(self.bell.as_ptr() as usize, bell)];
                let mut end: Option<Instant> = None;
                let mut overflow = false;
                for e in g.entries.iter().flatten() {
                    if words.len() < WAITV_MAX {
                        words.push((e.armed.word().as_ptr() as usize, e.armed.seen()));
                    } else {
                        overflow = true;
                    }
                    end = match (end, e.slice_end) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                (words, end, overflow)
            };
            let end = if overflow {
                let look = Instant::now() + OVERFLOW_LOOK;
                Some(end.map_or(look, |e| e.min(look)))
            } else {
                end
            };
            // By address: a future deregistered meanwhile may have unmapped
            // its word; the kernel validates addresses (and the bell, moved by
            // the deregistration, ends the sleep). Nothing is read through
            // them here.
            if !self.spin_for_change(&words) {
                futex::wait_many_at(&words, end);
            }
            self.fire();
        }
    }

    /// The spin phase of the one policy before sleeping: whether a word
    /// (or the bell) moved meanwhile.
    fn spin_for_change(&self, words: &[(usize, u32)]) -> bool {
        let mut spin = Spin::new();
        while spin.step() {
            let g = self.inner.lock();
            let moved = g.entries.iter().flatten().any(|e| e.armed.changed());
            drop(g);
            // Relaxed: the bell is compared with the value read under the lock.
            if moved || self.bell.load(Ordering::Relaxed) != words[0].1 {
                return true;
            }
        }
        false
    }

    /// Wakes (and removes) every registration whose word moved or whose
    /// slice ended.
    fn fire(&self) {
        let now = Instant::now();
        let mut fired = Vec::new();
        let mut g = self.inner.lock();
        let mut freed = Vec::new();
        for (i, slot) in g.entries.iter_mut().enumerate() {
            let due = slot
                .as_ref()
                .is_some_and(|e| e.armed.changed() || e.slice_end.is_some_and(|s| now >= s));
            if due {
                fired.push(slot.take().expect("checked"));
                freed.push(i);
            }
        }
        g.live -= fired.len();
        g.free.extend(freed);
        drop(g);
        for e in fired {
            let Entry { armed, waker, .. } = e;
            drop(armed);
            waker.wake();
        }
    }
}

/// An operation that may have to wait on a [`WaitSource`]: `attempt` tries
/// it without blocking (`None`: not now), `src` says what to wait on.
pub(crate) struct Wait<S, F> {
    src: S,
    attempt: F,
    key: Option<Key>,
    slices: u32,
    /// Run the slow checks in the next attempt (set after `Ready`).
    recheck: bool,
}

impl<S, F> Wait<S, F> {
    /// A future that completes with the first `Some` of `attempt`.
    pub(crate) fn new(src: S, attempt: F) -> Self {
        Wait {
            src,
            attempt,
            key: None,
            slices: 0,
            recheck: false,
        }
    }
}

impl<S, F> Drop for Wait<S, F> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            reactor().deregister(k);
        }
    }
}

impl<S, F, T> Future for Wait<S, F>
where
    S: WaitSource + Unpin,
    F: FnMut(&S, bool) -> Option<Result<T>> + Unpin,
{
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let this = self.get_mut();
        let r = reactor();
        // Woken by a slice end (the entry fired without its word moving):
        // the slow checks (a peer's death) run in this attempt.
        // `None`: not registered (first poll, or a retry after `Ready`);
        // `Some(false)`: the entry fired; `Some(true)`: still registered.
        let registered = this.key.as_ref().map(|k| r.update(k, cx.waker()));
        // The slow checks also run on the retry after `Ready`: the source
        // looked ready (its peer may be gone) but the fast attempt failed.
        let slow = registered == Some(false) || std::mem::take(&mut this.recheck);
        if let Some(done) = (this.attempt)(&this.src, slow) {
            if let Some(k) = this.key.take() {
                r.deregister(k);
            }
            return Poll::Ready(done);
        }
        if registered == Some(true) {
            // Still registered, woken spuriously or re-polled: keep waiting.
            return Poll::Pending;
        }
        if let Some(k) = this.key.take() {
            r.deregister(k);
            this.slices = this.slices.saturating_add(1);
        }
        let armed = this.src.arm();
        match this.src.readiness() {
            Readiness::Ready => {
                drop(armed);
                this.recheck = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Readiness::Soon => {
                // The waker of a change under way may miss us: look again soon.
                let nap = Instant::now() + Duration::from_micros(50 << this.slices.min(10));
                this.key = Some(r.register(armed, cx.waker(), Some(nap)));
            }
            Readiness::Pending => {
                let end = wait::slice(this.slices).map(|s| Instant::now() + s);
                this.key = Some(r.register(armed, cx.waker(), end));
            }
        }
        Poll::Pending
    }
}

/// The items of a receiving end as a `futures_core::Stream` (feature
/// `stream`): each item is one `recv_async`/`get_async`; the stream ends at
/// `Closed` (the other end gone, or the queue closed and drained). Dropping
/// it between items loses nothing.
#[cfg(feature = "stream")]
pub struct ItemStream<'a, T> {
    next: Box<dyn FnMut() -> ItemFuture<'a, T> + Send + 'a>,
    pending: Option<ItemFuture<'a, T>>,
}

#[cfg(feature = "stream")]
type ItemFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

#[cfg(feature = "stream")]
impl<T> std::fmt::Debug for ItemStream<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ItemStream").finish_non_exhaustive()
    }
}

#[cfg(feature = "stream")]
impl<'a, T> ItemStream<'a, T> {
    /// A stream of what `next()`'s futures yield.
    pub(crate) fn new(next: impl FnMut() -> ItemFuture<'a, T> + Send + 'a) -> Self {
        ItemStream {
            next: Box::new(next),
            pending: None,
        }
    }
}

#[cfg(feature = "stream")]
impl<T> futures_core::Stream for ItemStream<'_, T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        let this = &mut *self;
        let fut = this.pending.get_or_insert_with(|| (this.next)());
        match fut.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                this.pending = None;
                match r {
                    Err(crate::error::Error::Closed) => Poll::Ready(None),
                    r => Poll::Ready(Some(r)),
                }
            }
        }
    }
}
