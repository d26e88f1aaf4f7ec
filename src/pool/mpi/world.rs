//! The MPI job as this process sees it: [`init`] (every rank joins the
//! job there; ranks 1.. serve and never return), and on rank 0 the
//! [`World`]: the dispatcher state every MPI pool shares, the thread that
//! polls MPI for them, and the shutdown at exit that lets the job end
//! cleanly (`docs/protocols/pool-mpi.md`, "Life of a job").

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

use mpi::environment::Universe;
use mpi::topology::Communicator;
use mpi::Threading;
use parking_lot::{Condvar, Mutex};

use super::comm::{abort_job, AbortJobIfPanic, Backoff, Comm, Outgoing};
use super::dispatch::State;
use super::proto::{self, TAG_CTL};
use crate::error::{Error, Result};
use crate::pool::layout::MSG_STOP;

/// Variables a launcher (`mpirun`/`mpiexec` of Open MPI or MPICH, or a
/// PMI/PMIx launcher such as `srun`) sets in every rank it starts.
const LAUNCH_VARS: [&str; 4] = [
    "OMPI_COMM_WORLD_SIZE",
    "PMI_SIZE",
    "PMIX_RANK",
    "MPI_LOCALNRANKS",
];

/// How long rank 0, exiting, lets the ranks finish pieces of terminated
/// pools before it ends the job with `MPI_Abort`.
const EXIT_GRACE: Duration = Duration::from_secs(1);

/// How long the progress thread sleeps when no piece is out.
const IDLE_NAP: Duration = Duration::from_millis(100);

/// What `init()` found, for the errors of `.mpi().build()`.
enum Joined {
    /// This process is rank 0 of a job: its world.
    Root(Box<World>),
    /// MPI had been initialized before `shmproc::init()`: not ours to run.
    Foreign,
    /// This process serves as this worker rank (a task asking for a pool).
    Worker(i32),
}

static JOINED: OnceLock<Joined> = OnceLock::new();
/// Set by the first `init()` of this process (a forked child inherits it,
/// so it never initializes MPI a second time).
static STARTED: AtomicBool = AtomicBool::new(false);

/// Whether a launcher started this process as a rank of a job.
pub(super) fn launched() -> bool {
    LAUNCH_VARS.iter().any(|v| std::env::var_os(v).is_some())
}

/// Joins the MPI job if a launcher started this process: rank 0 returns
/// (and keeps the world for `.mpi()` pools), other ranks serve tasks until
/// rank 0 exits, then exit 0. Does nothing outside a job.
pub(crate) fn init() {
    // Relaxed: a flag this process reads; a second init() (or a forked
    // child of a rank) must not initialize MPI again.
    if !launched() || STARTED.swap(true, Ordering::Relaxed) {
        return;
    }
    // Serialized: rank 0 calls MPI from whichever thread waits for a
    // result, one at a time under the dispatcher's mutex.
    let Some((universe, threading)) = mpi::initialize_with_threading(Threading::Serialized) else {
        let _ = JOINED.set(Joined::Foreign);
        return;
    };
    let world = universe.world();
    // Collective: every rank makes it here.
    let comm = Comm(world.duplicate());
    // Collective too: the ranks that share memory with this one (a node as
    // the launcher placed them); only the count is kept, the communicator
    // is freed at once.
    let one_node = world.split_shared(0).size() == world.size();
    if world.rank() != 0 {
        let _ = JOINED.set(Joined::Worker(world.rank()));
        super::serve::serve(universe, comm);
    }
    let w = World {
        state: Mutex::new(State::new(comm)),
        size: world.size() as usize,
        one_node,
        threading,
        universe: Mutex::new(Some(universe)),
        bell: Mutex::new(false),
        bell_cv: Condvar::new(),
        pumpers: AtomicUsize::new(0),
        sleepers: AtomicUsize::new(0),
        progress: Once::new(),
        next_pool: AtomicU64::new(1),
        pid: std::process::id(),
    };
    if JOINED.set(Joined::Root(Box::new(w))).is_ok() {
        // SAFETY: `at_exit` is an `extern "C" fn()` without preconditions;
        // registering it has no other effect.
        unsafe { libc::atexit(at_exit) };
    }
}

/// Rank 0's share of the job.
pub(super) struct World {
    pub(super) state: Mutex<State>,
    /// Ranks in the job (rank 0 included).
    pub(super) size: usize,
    /// Every rank shares memory with rank 0 (the job runs on one node).
    pub(super) one_node: bool,
    threading: Threading,
    /// Dropped (`MPI_Finalize`) at exit.
    universe: Mutex<Option<Universe>>,
    /// Rung to wake the progress thread early.
    bell: Mutex<bool>,
    bell_cv: Condvar,
    /// Callers polling for their results now (the progress thread then
    /// stays out of their way).
    pub(super) pumpers: AtomicUsize,
    /// Callers asleep on a job: the progress thread polls for them.
    pub(super) sleepers: AtomicUsize,
    progress: Once,
    pub(super) next_pool: AtomicU64,
    /// Rank 0's process id: a process forked from it inherits the exit
    /// handler, which must do nothing there.
    pid: u32,
}

impl World {
    /// Rank 0's world, or why there is none.
    ///
    /// # Errors
    /// `InvalidArgument` when this process is not rank 0 of an `mpirun`
    /// job that called `shmproc::init()` first, when MPI was initialized by
    /// someone else, when the job has no other rank, or when the MPI
    /// library cannot serve calls from several threads.
    pub(super) fn get() -> Result<&'static World> {
        let what = "Pool::builder().mpi()";
        let w = match JOINED.get() {
            Some(Joined::Root(w)) => w,
            Some(Joined::Foreign) => {
                return Err(Error::invalid(
                    what,
                    "MPI initialized by shmproc::init()",
                    "MPI initialized before shmproc::init() by other code",
                ))
            }
            Some(Joined::Worker(rank)) => {
                return Err(Error::invalid(
                    what,
                    "rank 0 (the other ranks serve its pools)",
                    format!("a task on worker rank {rank}"),
                ))
            }
            None if launched() => {
                return Err(Error::invalid(
                    what,
                    "shmproc::init() called first in main (the worker ranks serve there)",
                    "an mpirun rank that has not called shmproc::init()",
                ))
            }
            None => {
                return Err(Error::invalid(
                    what,
                    "a process started by mpirun (e.g. `mpirun -n 4 <program>`); \
                     Pool::new(n) is the pool for one host",
                    "a process not started by an MPI launcher",
                ))
            }
        };
        if w.size < 2 {
            return Err(Error::invalid(
                what,
                "a job of at least 2 ranks (rank 0 and workers)",
                "a job of 1 rank",
            ));
        }
        if w.threading < Threading::Serialized {
            return Err(Error::invalid(
                what,
                "an MPI library with MPI_THREAD_SERIALIZED",
                format!("one that provides {:?}", w.threading),
            ));
        }
        Ok(w)
    }

    /// Starts the progress thread (once).
    pub(super) fn start_progress(&'static self) -> Result<()> {
        let mut err = None;
        self.progress.call_once(|| {
            if let Err(e) = std::thread::Builder::new()
                .name("shmproc-mpi".into())
                .spawn(move || self.progress_loop())
            {
                err = Some(Error::os("starting the MPI pool's progress thread", e));
            }
        });
        err.map_or(Ok(()), Err)
    }

    /// Wakes the progress thread.
    pub(super) fn ring(&self) {
        *self.bell.lock() = true;
        self.bell_cv.notify_one();
    }

    /// Sleeps `d` or until rung; whether it was rung.
    fn nap(&self, d: Duration) -> bool {
        let mut rung = self.bell.lock();
        if !*rung {
            let _ = self.bell_cv.wait_for(&mut rung, d);
        }
        std::mem::take(&mut *rung)
    }

    /// The progress thread: results must be received and queued pieces
    /// sent even while no caller polls (an `apply_async` whose caller does
    /// other work, callers asleep on long tasks). MPI cannot wake a
    /// sleeper, so it polls, napping longer while nothing comes.
    fn progress_loop(&'static self) {
        let _guard = AbortJobIfPanic("rank 0's progress thread");
        let mut backoff = Backoff::new();
        loop {
            let (got, out) = {
                let mut st = self.state.lock();
                if st.finalized() {
                    return;
                }
                let got = st.pump();
                (got, st.queued() + st.in_flight())
            };
            if got > 0 {
                backoff.reset();
            }
            // Relaxed (both): hints; a stale value costs one nap.
            let nap = if out == 0 {
                IDLE_NAP
            } else if self.pumpers.load(Ordering::Relaxed) > 0
                && self.sleepers.load(Ordering::Relaxed) == 0
            {
                Duration::from_millis(1) // a caller polls: stay out of its way
            } else {
                backoff.next_nap()
            };
            if self.nap(nap) {
                // A caller went to sleep on its job, or queued pieces: poll
                // at the shortest nap again, whatever came (or not) before.
                backoff.reset();
            }
        }
    }

    /// The identity handshake with workers `0..n`: every one must run this
    /// build. Waits for their replies (up to `timeout`).
    ///
    /// # Errors
    /// `InvalidArgument` naming the ranks that run another build;
    /// `Timeout` naming those that did not answer.
    pub(super) fn handshake(&self, n: usize, timeout: Duration) -> Result<()> {
        use super::dispatch::Greeting;
        let own = proto::own_identity()?;
        self.state.lock().greet(n, own);
        let deadline = Instant::now() + timeout;
        let mut backoff = Backoff::new();
        loop {
            {
                let mut st = self.state.lock();
                st.pump();
                let ranks = &st.ranks[..n];
                let refused: Vec<&str> = ranks
                    .iter()
                    .filter_map(|r| match &r.greeting {
                        Greeting::Refused(why) => Some(why.as_str()),
                        _ => None,
                    })
                    .collect();
                if !refused.is_empty() {
                    return Err(Error::invalid(
                        "MPI ranks",
                        format!("every rank running rank 0's executable, {own}"),
                        refused.join("; "),
                    ));
                }
                let silent = st.silent_ranks();
                if silent.is_empty() {
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    log::warn!(
                        "shmproc: MPI ranks did not answer the pool's handshake: {}",
                        silent.join(", ")
                    );
                    return Err(Error::Timeout);
                }
            }
            backoff.idle();
        }
    }

    /// At exit: let the ranks finish what they hold (a bounded while), tell
    /// each to exit, finalize MPI. Ranks still busy after the grace end
    /// the job with `MPI_Abort` instead: never a hang.
    fn shutdown(&self) {
        let mut st = self.state.lock();
        if st.finalized() {
            return;
        }
        let silent = st.silent_ranks();
        if !silent.is_empty() {
            // A rank that never answered the handshake may not speak this
            // protocol at all: it would not take STOP, and MPI_Finalize
            // would wait for it forever.
            abort_job(&format!(
                "rank 0 is exiting and {} never answered the pool's handshake \
                 (a program that does not call shmproc::init()?)",
                silent.join(", ")
            ));
        }
        let deadline = Instant::now() + EXIT_GRACE;
        let mut backoff = Backoff::new();
        while st.in_flight() > 0 {
            if Instant::now() >= deadline {
                abort_job(&format!(
                    "rank 0 is exiting while worker ranks still run {} piece(s) of tasks \
                     (of pools dropped or terminated with work out); MPI cannot stop a rank \
                     alone, so the job ends here",
                    st.in_flight()
                ));
            }
            st.pump();
            backoff.idle();
        }
        if let Some(comm) = st.comm() {
            let stops: Vec<Outgoing> = (1..self.size as i32)
                .map(|r| Outgoing::start(comm, r, TAG_CTL, vec![MSG_STOP]))
                .collect();
            drop(stops); // each waits until its rank took it
        }
        st.close_comm();
        // Under the dispatcher's mutex: no other thread calls MPI meanwhile.
        if let Some(u) = self.universe.lock().take() {
            drop(u); // MPI_Finalize: the ranks finalize as they take STOP
        }
        // From here every path to MPI finds no communicator (a pool dropped
        // by a later exit handler does no MPI call), and a send still held
        // keeps its bytes instead of waiting (`Outgoing`'s drop).
        drop(st);
    }
}

/// Rank 0's exit handler (registered with `atexit` in [`init`]): a Rust
/// program's exit paths (`main` returning, `std::process::exit`, a panic
/// that ends `main`) all pass here.
extern "C" fn at_exit() {
    if let Some(Joined::Root(w)) = JOINED.get() {
        if w.pid == std::process::id() {
            w.shutdown();
        }
    }
}
