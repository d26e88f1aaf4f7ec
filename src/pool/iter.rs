//! What callers hold while the workers run: [`AsyncResult`] (one pending
//! `apply_async`/`map_async`) and [`Imap`] (a streaming `imap`).

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::backend::Backend;
use super::encode::Encoder;
use super::job::{self, Arrival, Inbox, Job};
use crate::error::{Error, Result};

/// The result of [`Pool::apply_async`](super::Pool::apply_async) or
/// [`Pool::map_async`](super::Pool::map_async), to collect later
/// (Python's `AsyncResult`). It keeps the pool's state alive: after the pool
/// is dropped or terminated, unfinished results fail with [`Error::Closed`].
///
/// # Examples
/// ```no_run
/// # shmproc::init();
/// use std::time::Duration;
/// let pool = shmproc::Pool::new(2)?;
/// let r = pool.apply_async(|x: u64| x + 1, 41);
/// r.wait();
/// assert!(r.ready());
/// assert_eq!(r.get_timeout(Duration::from_secs(5))?, 42);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct AsyncResult<T> {
    core: Arc<dyn Backend>,
    job: Arc<Job>,
    n: u64,
    finish: fn(Inbox, u64) -> Result<T>,
    taken: AtomicBool,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for AsyncResult<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResult")
            .field("tasks", &self.n)
            .field("ready", &self.is_done())
            .finish()
    }
}

/// Decodes the one result of an `apply_async`.
pub(crate) fn single<R: DeserializeOwned>(ib: Inbox, _n: u64) -> Result<R> {
    job::collect::<R>(ib, 1)?.pop().ok_or(Error::Closed)
}

impl<T> AsyncResult<T> {
    pub(crate) fn new(
        core: Arc<dyn Backend>,
        job: Arc<Job>,
        n: u64,
        finish: fn(Inbox, u64) -> Result<T>,
    ) -> Self {
        // Under the inbox lock: a delivery either sees it or came first (and
        // a waiter's `done` check sees that delivery).
        job.inbox.lock().wake_at = n;
        AsyncResult {
            core,
            job,
            n,
            finish,
            taken: AtomicBool::new(false),
            _t: PhantomData,
        }
    }

    fn done(n: u64) -> impl Fn(&Inbox) -> bool {
        move |ib| ib.answered >= n || ib.fail.is_some()
    }

    fn is_done(&self) -> bool {
        Self::done(self.n)(&self.job.inbox.lock())
    }

    /// Whether the result is there (Python's `ready()`).
    ///
    /// # Examples
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x } shmproc::init();
    /// let pool = shmproc::Pool::new(1)?;
    /// let r = pool.apply_async(square, 3);
    /// while !r.ready() { std::thread::yield_now(); }
    /// assert_eq!(r.get()?, 9);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn ready(&self) -> bool {
        self.core.poll();
        self.is_done()
    }

    /// Waits until the result is there (Python's `wait()`).
    ///
    /// # Examples
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x } shmproc::init();
    /// let pool = shmproc::Pool::new(1)?;
    /// let r = pool.apply_async(square, 3);
    /// r.wait();
    /// assert!(r.ready());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn wait(&self) {
        self.core.wait_job(&self.job, &Self::done(self.n), None);
    }

    /// Waits at most `timeout`; returns whether the result is there.
    ///
    /// # Examples
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x } shmproc::init();
    /// let pool = shmproc::Pool::new(1)?;
    /// let r = pool.apply_async(square, 3);
    /// if r.wait_timeout(std::time::Duration::from_secs(5)) {
    ///     assert_eq!(r.get()?, 9);
    /// }
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.core.wait_job(
            &self.job,
            &Self::done(self.n),
            Some(Instant::now() + timeout),
        )
    }

    /// Waits for and returns the result.
    ///
    /// # Errors
    /// The task's error ([`Error::TaskPanicked`], [`Error::WorkerDied`], ...;
    /// for `map_async` the first failed task's), [`Error::Closed`] if the pool
    /// was terminated first, `InvalidArgument` if
    /// [`get_timeout`](Self::get_timeout) already took it.
    ///
    /// # Examples
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x } shmproc::init();
    /// let pool = shmproc::Pool::new(1)?;
    /// assert_eq!(pool.apply_async(square, 4).get()?, 16);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn get(self) -> Result<T> {
        self.wait();
        self.take()
    }

    /// Waits at most `timeout` for the result and takes it.
    ///
    /// # Errors
    /// [`Error::Timeout`] (the result can still be taken later); otherwise
    /// as [`get`](Self::get); a second successful call finds it taken.
    ///
    /// # Examples
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x } shmproc::init();
    /// let pool = shmproc::Pool::new(1)?;
    /// let r = pool.apply_async(square, 4);
    /// assert_eq!(r.get_timeout(std::time::Duration::from_secs(5))?, 16);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        // Relaxed: see `take`.
        if self.taken.load(Ordering::Relaxed) {
            return self.take();
        }
        if !self.wait_timeout(timeout) {
            return Err(Error::Timeout);
        }
        self.take()
    }

    fn take(&self) -> Result<T> {
        // Relaxed: the flag only guards against a second take in this process.
        if self.taken.swap(true, Ordering::Relaxed) {
            return Err(Error::invalid(
                "async result",
                "a result not taken yet",
                "a result already taken by get_timeout",
            ));
        }
        let ib = {
            let mut ib = self.job.inbox.lock();
            Inbox {
                arrivals: std::mem::take(&mut ib.arrivals),
                answered: ib.answered,
                fail: ib.fail.clone(),
                wake_at: ib.wake_at,
            }
        };
        (self.finish)(ib, self.n)
    }
}

/// The streaming iterator of [`Pool::imap`](super::Pool::imap) and
/// [`Pool::imap_unordered`](super::Pool::imap_unordered): yields one
/// `Result<R>` per input item. It pulls input lazily, keeping a bounded
/// number of tasks outstanding. Dropping it early abandons the rest. If the
/// pool stops serving (terminated, joined, or broken by a failing
/// initializer), the outstanding tasks yield that error and the iterator
/// ends without pulling more input (which may be endless).
///
/// # Examples
/// ```no_run
/// # fn square(x: u64) -> u64 { x * x } shmproc::init();
/// let pool = shmproc::Pool::new(2)?;
/// for (i, r) in pool.imap(square, 0..5u64).enumerate() {
///     assert_eq!(r?, (i * i) as u64); // in input order, as they come
/// }
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct Imap<I, R> {
    core: Arc<dyn Backend>,
    input: Option<I>,
    enc: Encoder,
    job: Arc<Job>,
    window: u64,
    ordered: bool,
    /// Ordered: results decoded and not yet yielded, slot `k` holding
    /// task `yielded + k`.
    by_index: VecDeque<Option<Result<R>>>,
    fifo: VecDeque<Result<R>>,
    /// The buffer swapped with the inbox's arrivals (kept for its capacity).
    spare: Vec<Arrival>,
    yielded: u64,
    /// The pool stopped serving: everything missing fails with this.
    failed: bool,
}

impl<I, R> std::fmt::Debug for Imap<I, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imap")
            .field("ordered", &self.ordered)
            .field("submitted", &self.enc.next_index())
            .field("yielded", &self.yielded)
            .finish()
    }
}

impl<I, R> Imap<I, R>
where
    I: Iterator,
    I::Item: Serialize,
    R: DeserializeOwned,
{
    pub(crate) fn new(
        core: Arc<dyn Backend>,
        input: I,
        runner: (u64, u64),
        chunk: usize,
        window: u64,
        ordered: bool,
    ) -> Self {
        let job = Arc::new(Job::default());
        let enc = Encoder::new(&*core, job.clone(), runner, chunk);
        Imap {
            core,
            input: Some(input),
            enc,
            job,
            window,
            ordered,
            by_index: VecDeque::new(),
            fifo: VecDeque::new(),
            spare: Vec::new(),
            yielded: 0,
            failed: false,
        }
    }

    /// Makes the iterator yield `e` once, then end (the pool was not
    /// running when it was made).
    pub(crate) fn fail_at_once(&mut self, e: Error) {
        self.input = None;
        self.failed = true;
        if self.ordered {
            self.by_index.push_back(Some(Err(e)));
        } else {
            self.fifo.push_back(Err(e));
        }
    }

    /// Pulls input while the window has room; submits whole pieces.
    fn fill(&mut self) {
        let Some(input) = self.input.as_mut() else {
            return;
        };
        while self.enc.next_index() - self.yielded < self.window {
            match input.next() {
                Some(a) => {
                    let index = self.enc.next_index();
                    if let Err(f) = self.enc.push(&a) {
                        self.enc.skip();
                        self.job.deliver(Arrival::Failed { index, fail: f });
                    }
                }
                None => {
                    self.input = None;
                    break;
                }
            }
        }
        // Each call sends what it has: a slow input must not hold results back.
        let mut pieces = self.enc.finish();
        if pieces.len() > 0 {
            self.core.submit(&mut pieces);
        }
    }

    fn pop_ready(&mut self) -> Option<Result<R>> {
        let r = if self.ordered {
            match self.by_index.front() {
                Some(Some(_)) => self.by_index.pop_front().flatten(),
                _ => None,
            }
        } else {
            self.fifo.pop_front()
        };
        if r.is_some() {
            self.yielded += 1;
        }
        r
    }

    /// Moves delivered results into the local buffers.
    fn take_arrivals(&mut self) {
        // Swapped with a kept buffer: neither side reallocates per batch.
        let mut arrivals = std::mem::take(&mut self.spare);
        let fail = {
            let mut ib = self.job.inbox.lock();
            std::mem::swap(&mut ib.arrivals, &mut arrivals);
            ib.fail.clone()
        };
        for a in arrivals.drain(..) {
            let (by_index, fifo, ordered) = (&mut self.by_index, &mut self.fifo, self.ordered);
            let base = self.yielded;
            job::decode::<R>(a, |i, r| {
                if ordered {
                    put(by_index, i.saturating_sub(base) as usize, r);
                } else {
                    fifo.push_back(r);
                }
            });
        }
        self.spare = arrivals;
        if let (Some(f), false) = (fail, self.failed) {
            // Everything submitted and not answered fails; nothing more is sent.
            self.failed = true;
            self.input = None;
            let answered = self.job.inbox.lock().answered;
            let missing = self.enc.next_index().saturating_sub(answered);
            if self.ordered {
                let outstanding = (self.enc.next_index() - self.yielded) as usize;
                for k in 0..outstanding {
                    if self.by_index.get(k).is_none_or(Option::is_none) {
                        put(&mut self.by_index, k, Err(f.to_error()));
                    }
                }
            }
            if !self.ordered {
                (0..missing).for_each(|_| self.fifo.push_back(Err(f.to_error())));
            }
        }
    }
}

/// Stores `r` in slot `k`, growing the buffer as needed.
fn put<R>(buf: &mut VecDeque<Option<Result<R>>>, k: usize, r: Result<R>) {
    if buf.len() <= k {
        buf.resize_with(k + 1, || None);
    }
    buf[k] = Some(r);
}

impl<I, R> Iterator for Imap<I, R>
where
    I: Iterator,
    I::Item: Serialize,
    R: DeserializeOwned,
{
    type Item = Result<R>;

    fn next(&mut self) -> Option<Result<R>> {
        if let Some(r) = self.pop_ready() {
            // Refill in batches: once half the window has been consumed.
            if !self.failed && self.enc.next_index() - self.yielded <= self.window / 2 {
                self.fill();
            }
            return Some(r);
        }
        loop {
            if !self.failed {
                self.fill();
            }
            self.take_arrivals();
            if let Some(r) = self.pop_ready() {
                return Some(r);
            }
            if self.input.is_none() && self.yielded >= self.enc.next_index() {
                return None;
            }
            if self.failed {
                return None; // nothing more can come
            }
            let ordered = self.ordered;
            let want = self.yielded;
            self.core.wait_job(
                &self.job,
                &move |ib| {
                    ib.fail.is_some()
                        || if ordered {
                            ib.arrivals
                                .iter()
                                .any(|a| a.first() <= want && want < a.first() + a.count())
                        } else {
                            !ib.arrivals.is_empty()
                        }
                },
                None,
            );
        }
    }
}

impl<I, R> Drop for Imap<I, R> {
    fn drop(&mut self) {
        // Relaxed: see `Job::deliver`.
        self.job.cancelled.store(true, Ordering::Relaxed);
    }
}

impl<T> crate::sync::many::sealed::WaitSource for AsyncResult<T> {
    fn readiness(&self) -> crate::sync::many::Readiness {
        if self.is_done() {
            crate::sync::many::Readiness::Ready
        } else {
            crate::sync::many::Readiness::Pending
        }
    }
    fn ready_slow(&self) -> bool {
        self.ready()
    }
    fn arm(&self) -> crate::sync::many::Armed {
        // While armed, the supervisor pumps results (as for a caller asleep
        // in `wait`), so a delivery moves the job's `done` word.
        self.core.add_sleeper();
        let core = self.core.clone();
        crate::sync::many::Armed::counted(&self.job.done, self.job.clone())
            .on_drop(move || core.remove_sleeper())
    }
}

/// The future of an [`AsyncResult`] (`.await` on it): the result, once
/// there, without blocking a thread (see [`Queue::get_async`](crate::Queue::get_async)).
pub struct AsyncResultFuture<T> {
    inner: crate::sync::reactor::Wait<AsyncResult<T>, Attempt<T>>,
}

/// The attempt of an [`AsyncResultFuture`]: take the result if it is there.
type Attempt<T> = fn(&AsyncResult<T>, bool) -> Option<Result<T>>;

impl<T> std::fmt::Debug for AsyncResultFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncResultFuture").finish_non_exhaustive()
    }
}

impl<T> std::future::Future for AsyncResultFuture<T> {
    type Output = Result<T>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<T>> {
        std::pin::Pin::new(&mut self.inner).poll(cx)
    }
}

impl<T> std::future::IntoFuture for AsyncResult<T> {
    type Output = Result<T>;
    type IntoFuture = AsyncResultFuture<T>;

    /// `r.await` takes the result as [`get`](AsyncResult::get) does, without
    /// blocking a thread.
    ///
    /// # Examples
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x }
    /// # async fn demo() -> shmproc::Result<()> {
    /// let pool = shmproc::Pool::new(2)?;
    /// let r: u64 = pool.apply_async(square, 7).await?;
    /// assert_eq!(r, 49);
    /// # Ok(()) }
    /// ```
    fn into_future(self) -> AsyncResultFuture<T> {
        fn attempt<T>(r: &AsyncResult<T>, _slow: bool) -> Option<Result<T>> {
            r.ready().then(|| r.take())
        }
        AsyncResultFuture {
            inner: crate::sync::reactor::Wait::new(self, attempt::<T>),
        }
    }
}
