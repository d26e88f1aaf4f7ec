//! [`PoolBuilder`]: a pool's size, initializer, `maxtasksperchild` and
//! `chunksize`, and `build`, which starts the workers and waits for them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::core::Core;
use super::dispatch::Spawner;
use super::worker::{self, worker_main, WorkerArgs};
use super::{Pool, START_TIMEOUT};
use crate::error::{Error, Result};
use crate::process::{EntryReturn, Process};

/// Configures a [`Pool`]: `processes`, `initializer`, `maxtasksperchild`,
/// `chunksize`.
///
/// # Examples
/// ```no_run
/// use shmproc::Pool;
///
/// fn setup(level: u32) {
///     println!("worker {} ready at level {level}", std::process::id());
/// }
/// fn double(x: i32) -> i32 {
///     2 * x
/// }
///
/// fn main() -> shmproc::Result<()> {
///     shmproc::init();
///     let pool = Pool::builder()
///         .processes(2)
///         .initializer(setup, 3)
///         .maxtasksperchild(100)
///         .chunksize(16)
///         .build()?;
///     assert_eq!(pool.map(double, vec![1, 2, 3])?, vec![2, 4, 6]);
///     Ok(())
/// }
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct PoolBuilder {
    processes: Option<usize>,
    chunksize: Option<usize>,
    max_tasks: u64,
    spawner: Spawner,
    /// `.mpi()` was called; the initializer as it travels to MPI ranks.
    #[cfg(feature = "mpi")]
    mpi: bool,
    #[cfg(feature = "mpi")]
    mpi_init: Option<super::mpi::InitCall>,
}

impl std::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("processes", &self.processes)
            .field("chunksize", &self.chunksize)
            .field("maxtasksperchild", &self.max_tasks)
            .finish_non_exhaustive()
    }
}

/// A spawner for workers whose initializer is `F(args)`.
fn spawner<F, A, R>(_f: F, args: A) -> Spawner
where
    F: FnOnce(A) -> R,
    A: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
    R: EntryReturn,
{
    let counter = std::sync::atomic::AtomicU64::new(0);
    Arc::new(move |b, w: WorkerArgs| {
        // Relaxed: a unique number is all that is needed.
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        b.clone()
            .name(format!("SpawnPoolWorker-{n}"))
            .spawn(worker_main::<F, A, R>, (w, args.clone()))
    })
}

impl PoolBuilder {
    pub(super) fn new() -> PoolBuilder {
        PoolBuilder {
            processes: None,
            chunksize: None,
            max_tasks: 0,
            spawner: spawner(worker::no_init, ()),
            #[cfg(feature = "mpi")]
            mpi: false,
            #[cfg(feature = "mpi")]
            mpi_init: None,
        }
    }

    /// Number of worker processes (default [`cpu_count`](crate::cpu_count)).
    ///
    /// # Examples
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x } shmproc::init();
    /// assert_eq!(shmproc::Pool::builder().processes(2).build()?.processes(), 2);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn processes(mut self, n: usize) -> PoolBuilder {
        self.processes = Some(n);
        self
    }

    /// Runs `f(args)` in each worker before it takes tasks (Python's
    /// `initializer`/`initargs`). `f` returns `()` or `Result<(), E>`; if it
    /// panics or returns `Err`, [`build`](Self::build) fails with
    /// [`Error::TaskPanicked`] naming the message.
    ///
    /// # Examples
    /// ```no_run
    /// fn setup(level: u32) { eprintln!("worker {} ready (level {level})", std::process::id()); }
    /// # fn square(x: u64) -> u64 { x * x } shmproc::init();
    /// let _pool = shmproc::Pool::builder().initializer(setup, 3).build()?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn initializer<F, A, R>(mut self, f: F, args: A) -> PoolBuilder
    where
        F: FnOnce(A) -> R,
        A: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        R: EntryReturn,
    {
        assert_zst!(F);
        #[cfg(feature = "mpi")]
        {
            self.mpi_init = Some(super::mpi::InitCall::new::<F, A, R>(&args));
        }
        self.spawner = spawner(f, args);
        self
    }

    /// Each worker exits after this many pieces of work (a chunk counts as
    /// one, as in Python) and is replaced by a fresh one. 0 = never.
    ///
    /// # Examples
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x } shmproc::init();
    /// let pool = shmproc::Pool::builder().processes(1).maxtasksperchild(1).chunksize(1).build()?;
    /// let first = pool.pids();
    /// pool.map(square, 0..3u64)?; // each task on a fresh worker
    /// assert_ne!(pool.pids(), first);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn maxtasksperchild(mut self, n: u64) -> PoolBuilder {
        self.max_tasks = n;
        self
    }

    /// Tasks per message for `map`/`starmap`/`imap` (default: `map` picks
    /// `ceil(n / (4 * processes))`, `imap` sends one task per message).
    ///
    /// # Examples
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x } shmproc::init();
    /// let pool = shmproc::Pool::builder().chunksize(100).build()?;
    /// assert_eq!(pool.map(square, 0..1000u64)?.len(), 1000);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn chunksize(mut self, n: usize) -> PoolBuilder {
        self.chunksize = Some(n.max(1));
        self
    }

    /// The workers are the other ranks of the MPI job this process is
    /// rank 0 of (cargo feature `mpi`), not processes on this host. Run the
    /// program with `mpirun -n <1 + workers> <program>`; its `main` calls
    /// [`shmproc::init()`](crate::init) first, where ranks 1.. serve tasks
    /// and never return. The same methods, errors and scheduling as a
    /// local pool; `processes(n)` uses ranks `1..=n` (default: all),
    /// `initializer` runs once on each of them, `maxtasksperchild` is
    /// refused (a rank cannot be replaced). MPI is fail-stop: a rank that
    /// dies ends the whole job (`docs/protocols/pool-mpi.md`). Without
    /// `mpirun`, [`build`](Self::build) fails with a clear error.
    ///
    /// # Examples
    /// ```no_run
    /// fn square(x: u64) -> u64 {
    ///     x * x
    /// }
    ///
    /// fn main() -> shmproc::Result<()> {
    ///     shmproc::init(); // under mpirun, ranks 1.. serve tasks here
    ///     let pool = shmproc::Pool::builder().mpi().build()?; // rank 0
    ///     assert_eq!(pool.map(square, 0..4u64)?, [0, 1, 4, 9]);
    ///     Ok(())
    /// }
    /// ```
    #[cfg(feature = "mpi")]
    pub fn mpi(mut self) -> PoolBuilder {
        self.mpi = true;
        self
    }

    /// Starts the workers and waits until every initializer has run.
    ///
    /// # Errors
    /// `InvalidArgument` for 0 processes; [`Error::TaskPanicked`] if an
    /// initializer failed; launch errors (see [`Process::spawn`]);
    /// `Timeout` if the workers did not start within a minute. With
    /// `.mpi()`: `InvalidArgument` outside an `mpirun` job (or before
    /// `shmproc::init()`), for more processes than worker ranks, for
    /// `maxtasksperchild`, or when a rank runs another executable than
    /// rank 0; `Timeout` if ranks do not answer within a minute.
    ///
    /// # Examples
    /// ```no_run
    /// # fn square(x: u64) -> u64 { x * x } shmproc::init();
    /// assert_eq!(shmproc::Pool::builder().processes(4).build()?.pids().len(), 4);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn build(self) -> Result<Pool> {
        #[cfg(feature = "mpi")]
        if self.mpi {
            return super::mpi::build(super::mpi::Options {
                workers: self.processes,
                chunksize: self.chunksize,
                max_tasks: self.max_tasks,
                init: self.mpi_init,
            });
        }
        let n = self.processes.unwrap_or_else(crate::cpu_count);
        if n == 0 || n > 4096 {
            return Err(Error::invalid("processes", "1..=4096", n));
        }
        let builder = Process::builder().daemon(true).pin_child_args()?;
        let core = Core::new(n, self.spawner, builder, self.max_tasks)?;
        let c = core.clone();
        let handle = std::thread::Builder::new()
            .name("shmproc-pool".into())
            .spawn(move || c.supervise())
            .map_err(|e| Error::os("starting the pool's supervisor thread", e))?;
        let pool = Pool {
            core: core.clone(),
            supervisor: Mutex::new(Some(handle)),
            chunksize: self.chunksize,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let (serving, broken) = core.startup_status();
            if let Some(f) = broken {
                return Err(f.to_error()); // dropping `pool` reaps everything
            }
            if serving == n {
                return Ok(pool);
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
