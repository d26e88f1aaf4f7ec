//! [`Pool`]: Python's `multiprocessing.Pool` over worker processes.
//!
//! - `layout.rs`: the pool segment (a task ring and a result ring per
//!   worker: `chan::bytes::Messages`) and the message headers;
//! - `worker.rs`: the worker process (initializer, task loop, task runners);
//! - `dispatch.rs`: which worker holds which task, deaths, replacements;
//!   `lane.rs`: one worker's pieces in flight and its room rule (the MPI
//!   dispatcher keeps the same per rank);
//! - `core.rs`: what callers and the supervisor thread share, and how they
//!   drive the dispatcher (submit, wait, supervise, terminate, join);
//! - `encode.rs`: arguments cut into pieces; `fixed.rs`: the 8-byte scalar
//!   format; `job.rs`: results delivered to a call and decoded in its thread;
//! - `iter.rs`: [`AsyncResult`] and the streaming [`Imap`]; `stream.rs`:
//!   the blocking `map`, encoding a window ahead of its results;
//! - `builder.rs`: [`PoolBuilder`] and `build` (workers started and ready);
//! - `backend.rs`: what the calls above need from the workers: this host's
//!   processes (`core.rs`) or, with the `mpi` feature, MPI ranks (`mpi/`).
//!
//! The protocol and its failure cases are in `docs/protocols/pool.md`.

/// Fails to compile unless `F` is a fn item or a non-capturing closure.
macro_rules! assert_zst {
    ($f:ty) => {
        const {
            assert!(
                std::mem::size_of::<$f>() == 0,
                "a Pool task must be a fn item or a non-capturing closure; pass data as arguments"
            )
        }
    };
}

mod backend;
mod builder;
mod core;
mod dispatch;
mod encode;
mod fixed;
mod iter;
mod job;
mod lane;
mod layout;
#[cfg(feature = "mpi")]
pub(crate) mod mpi;
mod stream;
mod worker;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Result;
#[cfg(doc)]
use crate::Error;
use backend::Backend;
use encode::Encoder;
use job::{Fail, Job};

pub use builder::PoolBuilder;
pub use iter::{AsyncResult, AsyncResultFuture, Imap};
use worker::Map;
pub use worker::{Invoke, Star};

/// How long `build` waits for the workers' initializers.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A pool of worker processes (Python's `multiprocessing.Pool`).
///
/// Tasks are fn items or non-capturing closures (like [`Process::spawn`](crate::Process::spawn));
/// arguments and results travel serialized (postcard). A task that panics
/// fails with [`Error::TaskPanicked`]; a worker that dies (even by SIGKILL)
/// fails the task it held with [`Error::WorkerDied`] and is replaced.
/// Dropping the pool terminates it (Python's `with Pool() as p:`). With the
/// cargo feature `mpi`, `Pool::builder().mpi()` makes the same pool over the
/// ranks of an `mpirun` job (`docs/protocols/pool-mpi.md`).
///
/// # Examples
/// ```no_run
/// use shmproc::Pool;
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn main() -> shmproc::Result<()> {
///     shmproc::init();
///     let pool = Pool::new(4)?;
///     let squares: Vec<u64> = pool.map(square, 0..10u64)?;
///     assert_eq!(squares[3], 9);
///     Ok(())
/// }
/// ```
pub struct Pool {
    core: Arc<dyn Backend>,
    /// The local pool's supervisor thread (an MPI pool has none of its own).
    supervisor: Mutex<Option<JoinHandle<()>>>,
    chunksize: Option<usize>,
}

impl Pool {
    /// A pool of `n` workers with the defaults (see [`Pool::builder`]).
    ///
    /// # Errors
    /// As [`PoolBuilder::build`].
    ///
    /// # Examples
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x } shmproc::init();
    /// assert_eq!(shmproc::Pool::new(4)?.map(square, [1u64, 2, 3, 4])?, [1, 4, 9, 16]);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new(n: usize) -> Result<Pool> {
        Pool::builder().processes(n).build()
    }

    /// A builder for `processes`, `initializer`, `maxtasksperchild`, `chunksize`.
    ///
    /// # Examples
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x } shmproc::init();
    /// let _pool = shmproc::Pool::builder().processes(2).chunksize(8).build()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    /// Number of worker processes.
    ///
    /// # Examples
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x } shmproc::init();
    /// assert_eq!(shmproc::Pool::new(3)?.processes(), 3);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn processes(&self) -> usize {
        self.core.size()
    }

    /// Process ids of the workers alive now.
    ///
    /// # Examples
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x } shmproc::init();
    /// assert!(shmproc::Pool::new(2)?.pids().iter().all(|p| *p != std::process::id()));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn pids(&self) -> Vec<u32> {
        self.core.pids()
    }

    /// `f` applied to every item, results in input order (Python's `map`).
    /// Chunks of `ceil(n / (4 * processes))` tasks (or the builder's
    /// `chunksize`) go to the workers. An input without an exact size is
    /// collected first to count it; arguments are encoded a few chunks per
    /// worker ahead of the results, and results are decoded as they come, so
    /// a large map never holds all its encoded arguments and results at once.
    ///
    /// # Errors
    /// The first failed task's error (lowest index): [`Error::TaskPanicked`],
    /// [`Error::WorkerDied`], `Codec`, `MessageTooLarge`; [`Error::Closed`]
    /// after `close`/`terminate`. It returns as soon as that task's turn
    /// comes (tasks after it are cancelled), where Python waits for all.
    ///
    /// # Examples
    /// ```no_run
    /// # shmproc::init();
    /// let pool = shmproc::Pool::new(2)?;
    /// assert_eq!(pool.map(|x: u32| x + 1, [1, 2, 3])?, vec![2, 3, 4]);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn map<F, A, R, I>(&self, f: F, iter: I) -> Result<Vec<R>>
    where
        F: Fn(A) -> R,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        assert_zst!(F);
        let _ = f;
        self.run_all::<Map<F>, A, R, I>(iter)
    }

    /// [`map`](Self::map) without waiting: the result comes from the
    /// returned [`AsyncResult`].
    ///
    /// # Errors
    /// [`Error::Closed`] after `close`/`terminate`, or an argument that
    /// does not encode.
    ///
    /// # Examples
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x } shmproc::init();
    /// let pool = shmproc::Pool::new(2)?;
    /// let pending = pool.map_async(square, 0..10u64);
    /// assert_eq!(pending.get()?[9], 81);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn map_async<F, A, R, I>(&self, f: F, iter: I) -> AsyncResult<Vec<R>>
    where
        F: Fn(A) -> R,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        assert_zst!(F);
        let _ = f;
        self.submit_all::<Map<F>, A, R, I>(iter)
    }

    /// `f(a, b, ..)` for every tuple `(a, b, ..)` (1 to 6 fields), results
    /// in input order (Python's `starmap`).
    ///
    /// # Errors
    /// As [`map`](Self::map).
    ///
    /// # Examples
    /// ```no_run
    /// # shmproc::init();
    /// fn add(a: u32, b: u32) -> u32 { a + b }
    /// let pool = shmproc::Pool::new(2)?;
    /// assert_eq!(pool.starmap(add, [(1, 2), (3, 4)])?, vec![3, 7]);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn starmap<F, T, R, I>(&self, f: F, iter: I) -> Result<Vec<R>>
    where
        Star<F>: Invoke<T, Output = R>,
        T: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = T>,
    {
        assert_zst!(F);
        let _ = f;
        self.run_all::<Star<F>, T, R, I>(iter)
    }

    /// Runs `f(args)` in a worker and waits for the result (Python's `apply`).
    ///
    /// # Errors
    /// As [`map`](Self::map), for the one task.
    ///
    /// # Examples
    /// ```no_run
    /// # shmproc::init();
    /// let pool = shmproc::Pool::new(1)?;
    /// assert_eq!(pool.apply(|(a, b): (u32, u32)| a * b, (6, 7))?, 42);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn apply<F, A, R>(&self, f: F, args: A) -> Result<R>
    where
        F: Fn(A) -> R,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        self.apply_async(f, args).get()
    }

    /// Starts `f(args)` in a worker; the result comes from the returned
    /// [`AsyncResult`] (Python's `apply_async`). A call that cannot start
    /// (the pool closed or terminated: [`Error::Closed`]; an argument that
    /// does not encode (`Codec`) or exceeds the message limit) gives an
    /// `AsyncResult` that is ready at once with that error.
    ///
    /// # Examples
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x } shmproc::init();
    /// let pool = shmproc::Pool::new(2)?;
    /// let r = pool.apply_async(square, 7);
    /// assert_eq!(r.get()?, 49);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn apply_async<F, A, R>(&self, f: F, args: A) -> AsyncResult<R>
    where
        F: Fn(A) -> R,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        assert_zst!(F);
        let _ = f;
        let job = Arc::new(Job::default());
        let started = self.running().and_then(|()| {
            let runner = worker::runner_of::<Map<F>, A>();
            let mut enc = Encoder::new(&*self.core, job.clone(), runner, 1);
            enc.push(&args)?;
            self.core.submit(&mut enc.finish());
            Ok(())
        });
        if let Err(f) = started {
            job.fail_now(f);
        }
        AsyncResult::new(self.core.clone(), job, 1, iter::single::<R>)
    }

    /// A lazy iterator of `f(item)` results in input order (Python's
    /// `imap`). The input is pulled only while fewer than
    /// `max(4 * processes * chunksize, 256)` tasks are outstanding, so an
    /// endless iterator works. Default chunksize 1 (the builder's, if set).
    ///
    /// Each item is a `Result` with the task's own error; after
    /// `close`/`terminate` the iterator yields one [`Error::Closed`] and ends.
    ///
    /// # Examples
    /// ```no_run
    /// # shmproc::init();
    /// let pool = shmproc::Pool::new(2)?;
    /// let mut evens = pool.imap(|x: u64| 2 * x, 0..); // endless input
    /// assert_eq!(evens.next().unwrap()?, 0);
    /// assert_eq!(evens.next().unwrap()?, 2);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn imap<F, A, R, I>(&self, f: F, iter: I) -> Imap<I::IntoIter, R>
    where
        F: Fn(A) -> R,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        assert_zst!(F);
        let _ = f;
        self.imap_with::<Map<F>, A, R, I>(iter, true)
    }

    /// As [`imap`](Self::imap), but results come in completion order
    /// (Python's `imap_unordered`).
    ///
    /// # Examples
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x } shmproc::init();
    /// let pool = shmproc::Pool::new(2)?;
    /// let mut all: Vec<u64> = pool.imap_unordered(square, 0..5u64).collect::<shmproc::Result<_>>()?;
    /// all.sort();
    /// assert_eq!(all, [0, 1, 4, 9, 16]);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn imap_unordered<F, A, R, I>(&self, f: F, iter: I) -> Imap<I::IntoIter, R>
    where
        F: Fn(A) -> R,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        assert_zst!(F);
        let _ = f;
        self.imap_with::<Map<F>, A, R, I>(iter, false)
    }

    fn imap_with<G, A, R, I>(&self, iter: I, ordered: bool) -> Imap<I::IntoIter, R>
    where
        G: Invoke<A, Output = R>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        let chunk = self.chunksize.unwrap_or(1);
        let window = (self.core.pieces_ahead() * self.core.size() * chunk).max(256) as u64;
        let mut it = Imap::new(
            self.core.clone(),
            iter.into_iter(),
            worker::runner_of::<G, A>(),
            chunk,
            window,
            ordered,
        );
        if let Err(f) = self.running() {
            it.fail_at_once(f.to_error());
        }
        it
    }

    /// Prevents new calls (Python's `close`); work already submitted goes
    /// on. Call [`join`](Self::join) next to wait for it.
    ///
    /// # Examples
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x } shmproc::init();
    /// let pool = shmproc::Pool::new(2)?;
    /// pool.close(); // no new work
    /// assert!(pool.map(square, [1u64]).is_err());
    /// pool.join()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn close(&self) {
        self.core.close();
    }

    /// After [`close`](Self::close): waits until all submitted work is done,
    /// then stops and reaps the workers. After [`terminate`](Self::terminate):
    /// returns at once.
    ///
    /// # Errors
    /// `InvalidArgument` if the pool is still running (Python raises too).
    ///
    /// # Examples
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x } shmproc::init();
    /// let pool = shmproc::Pool::new(2)?;
    /// let r = pool.map_async(square, 0..100u64);
    /// pool.close();
    /// pool.join()?; // the workers finish what they took, then exit
    /// assert_eq!(r.get()?.len(), 100);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn join(&self) -> Result<()> {
        self.core.join()?;
        self.stop_supervisor();
        Ok(())
    }

    /// Stops the workers now (SIGTERM, SIGKILL after 100 ms) and reaps them;
    /// unfinished tasks fail with [`Error::Closed`]. Dropping the pool does
    /// the same.
    ///
    /// # Examples
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x } shmproc::init();
    /// let pool = shmproc::Pool::new(2)?;
    /// pool.terminate(); // kills the workers now (dropping the pool does too)
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn terminate(&self) {
        self.core.terminate();
        self.stop_supervisor();
    }

    fn stop_supervisor(&self) {
        if let Some(h) = self.supervisor.lock().take() {
            self.core.wake();
            let _ = h.join();
        }
    }

    /// `Ok` while the pool takes work; else why not (closed or terminated,
    /// or broken by a failing initializer).
    fn running(&self) -> std::result::Result<(), Fail> {
        self.core.running()
    }

    /// Encodes and submits all of `iter` as one job; a job that cannot start
    /// (pool not running, an argument that does not encode) is ready at once
    /// with that error.
    fn submit_all<G, A, R, I>(&self, iter: I) -> AsyncResult<Vec<R>>
    where
        G: Invoke<A, Output = R>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        let job = Arc::new(Job::default());
        // No waiter before `AsyncResult::new` sets the real count.
        job.inbox.lock().wake_at = u64::MAX;
        let submitted = self
            .running()
            .and_then(|()| self.submit_items::<G, A, R, I>(&job, iter));
        let n = submitted.unwrap_or_else(|f| {
            // Relaxed: see `Job::deliver`; pieces already sent are dropped.
            job.cancelled
                .store(true, std::sync::atomic::Ordering::Relaxed);
            job.fail_now(f);
            // One task that never comes: `get` reports the failure (with 0,
            // an empty job would count as complete).
            1
        });
        AsyncResult::new(self.core.clone(), job, n, job::collect::<R>)
    }

    /// Runs every item of `iter` and waits for the results, in input order
    /// (`stream.rs`: encoding a window ahead, decoding as results come).
    fn run_all<G, A, R, I>(&self, iter: I) -> Result<Vec<R>>
    where
        G: Invoke<A, Output = R>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        self.running().map_err(|f| f.to_error())?;
        let runner = worker::runner_of::<G, A>();
        let it = iter.into_iter();
        match it.size_hint() {
            (lo, Some(hi)) if lo == hi => {
                stream::map_in_order(&*self.core, runner, self.chunk_for(lo), it, lo)
            }
            _ => {
                let items: Vec<A> = it.collect();
                let n = items.len();
                stream::map_in_order(&*self.core, runner, self.chunk_for(n), items.into_iter(), n)
            }
        }
    }

    /// Tasks per piece for a call of `n` tasks: the pool's `chunksize`, or
    /// Python's `ceil(n / (4 * workers))`.
    fn chunk_for(&self, n: usize) -> usize {
        self.chunksize
            .unwrap_or_else(|| n.div_ceil(4 * self.core.size()).max(1))
    }

    /// Submits every item of `iter` to `job`; returns how many.
    fn submit_items<G, A, R, I>(&self, job: &Arc<Job>, iter: I) -> std::result::Result<u64, Fail>
    where
        G: Invoke<A, Output = R>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
        I: IntoIterator<Item = A>,
    {
        let it = iter.into_iter();
        match it.size_hint() {
            (lo, Some(hi)) if lo == hi => self.submit_exact::<G, A, R>(job, it, lo),
            _ => {
                let items: Vec<A> = it.collect();
                let n = items.len();
                self.submit_exact::<G, A, R>(job, items.into_iter(), n)
            }
        }
    }

    fn submit_exact<G, A, R>(
        &self,
        job: &Arc<Job>,
        it: impl Iterator<Item = A>,
        n: usize,
    ) -> std::result::Result<u64, Fail>
    where
        G: Invoke<A, Output = R>,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned,
    {
        let chunk = self.chunk_for(n);
        let runner = worker::runner_of::<G, A>();
        let mut enc = Encoder::new(&*self.core, job.clone(), runner, chunk);
        enc.push_all(it, |ready| self.core.submit(&mut ready.drain(..)))?;
        let count = enc.next_index();
        self.core.submit(&mut enc.finish());
        Ok(count)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.terminate();
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("processes", &self.core.size())
            .field("pids", &self.pids())
            .finish()
    }
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Pool>();
    send_sync::<AsyncResult<Vec<String>>>();
    send_sync::<Imap<std::ops::Range<u64>, String>>();
};
