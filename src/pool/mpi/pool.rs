//! [`MpiPool`]: one `Pool` over the worker ranks (the [`Backend`] its
//! calls use), and [`build`], which makes one.

use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::proto::MAX_MESSAGE;
use super::world::World;
use crate::error::{Error, Result};
use crate::pool::backend::{join_while_running, Backend, PIECES_AHEAD};
use crate::pool::dispatch::{Mode, Piece};
use crate::pool::job::{self, Fail, Inbox, Job};
use crate::pool::worker::{runner_of, Invoke};
use crate::pool::{Pool, START_TIMEOUT};
use crate::process::entry::{self, EntryReturn};
use crate::sync::wait::Spin;

/// How long a caller waiting for its job polls MPI before it sleeps: twice
/// the longest nap of an idle worker rank (`comm::NAP_MAX`), so that a task
/// sent to a napping rank is answered while the caller still polls, and the
/// caller's next task finds that rank in its spin phase.
const CALLER_SPIN: Duration = Duration::from_millis(2);

/// Pieces per rank that `map` encodes ahead of its results when the job runs
/// on one node (across nodes: the local pool's `backend::PIECES_AHEAD`).
/// Within a node a rank's 64 KiB results reach rank 0 only when rank 0 polls
/// (the receiver pulls them by single copy), and rank 0 polls neither while
/// it encodes the next half of the window nor while it decodes: with 4, ranks
/// ran dry. `map` of 1M tiny tasks, 2 ranks, one node: 156-186 M tasks/s
/// (4), 215-224 (8), 263-269 (16), 233-244 (32). Over TCP (two simulated
/// nodes) 16 was slower: 14-21 M against 36-42 M with 4.
const PIECES_AHEAD_ONE_NODE: usize = 16;

/// A pool whose workers are ranks `1..=workers` of the job.
pub(crate) struct MpiPool {
    world: &'static World,
    id: u64,
    workers: usize,
    /// [`Backend::pieces_ahead`].
    ahead: usize,
}

impl Backend for MpiPool {
    fn size(&self) -> usize {
        self.workers
    }

    fn max_arg(&self) -> usize {
        MAX_MESSAGE
    }

    fn pieces_ahead(&self) -> usize {
        self.ahead
    }

    fn submit(&self, pieces: &mut dyn Iterator<Item = Piece>) {
        let mut st = self.world.state.lock();
        st.queue(self.id, self.workers, None, pieces);
        st.pump();
        let queued = st.queued() > 0;
        drop(st);
        if queued {
            self.world.ring(); // the progress thread sends them as ranks free up
        }
    }

    fn wait_job(
        &self,
        job: &Job,
        done: &dyn Fn(&Inbox) -> bool,
        deadline: Option<Instant>,
    ) -> bool {
        let w = self.world;
        crate::pool::job::wait_job(
            job,
            done,
            deadline,
            crate::pool::job::Pumping {
                pumpers: &w.pumpers,
                pump: &|| self.poll(),
                add_sleeper: &|| self.add_sleeper(),
                remove_sleeper: &|| self.remove_sleeper(),
                // A worker rank that sat idle naps up to `comm::NAP_MAX`
                // between polls, and MPI cannot wake it or us: a caller that
                // slept after the one policy's shorter spin left both sides
                // napping at every round trip (2-3 ms per `apply`).
                spin: Spin::lasting(CALLER_SPIN),
            },
        )
    }

    fn add_sleeper(&self) {
        // Relaxed: the ring below wakes the progress thread anyway.
        self.world.sleepers.fetch_add(1, Ordering::Relaxed);
        self.world.ring();
    }

    fn remove_sleeper(&self) {
        // Relaxed: a hint for the progress thread.
        self.world.sleepers.fetch_sub(1, Ordering::Relaxed);
    }

    fn poll(&self) {
        if let Some(mut st) = self.world.state.try_lock() {
            st.pump();
        }
    }

    fn running(&self) -> std::result::Result<(), Fail> {
        match self.world.state.lock().mode(self.id) {
            Mode::Running => Ok(()),
            _ => Err(Fail::Closed),
        }
    }

    fn close(&self) {
        let mut st = self.world.state.lock();
        if st.mode(self.id) == Mode::Running {
            st.set_mode(self.id, Mode::Closed);
        }
    }

    /// Waits until the pool's work is answered. The ranks stay: they serve
    /// other pools and exit with rank 0.
    fn join(&self) -> Result<()> {
        let mut backoff = super::comm::Backoff::new();
        loop {
            {
                let mut st = self.world.state.lock();
                match st.mode(self.id) {
                    Mode::Running => return Err(join_while_running()),
                    Mode::Terminated | Mode::Joining => return Ok(()),
                    Mode::Closed => {}
                }
                st.pump();
                if !st.pool_busy(self.id) {
                    st.set_mode(self.id, Mode::Joining);
                    return Ok(());
                }
            }
            backoff.idle();
        }
    }

    fn terminate(&self) {
        self.world.state.lock().terminate_pool(self.id);
    }

    fn pids(&self) -> Vec<u32> {
        let st = self.world.state.lock();
        st.ranks
            .iter()
            .take(self.workers)
            .filter_map(|r| r.pid())
            .collect()
    }

    fn wake(&self) {
        self.world.ring();
    }
}

impl Drop for MpiPool {
    fn drop(&mut self) {
        let mut st = self.world.state.lock();
        st.terminate_pool(self.id);
        st.remove_pool(self.id);
    }
}

/// A pool initializer as it travels to the ranks: its runner and its
/// encoded arguments (or why they do not encode).
pub(crate) struct InitCall {
    runner: (u64, u64),
    args: std::result::Result<Vec<u8>, Fail>,
}

/// `f(args)` run as a one-task piece: what an initializer's runner calls.
struct Init<F>(PhantomData<F>);

impl<F, A, R> Invoke<A> for Init<F>
where
    F: FnOnce(A) -> R,
    R: EntryReturn,
{
    type Output = std::result::Result<(), String>;

    fn invoke(&self, args: A) -> Self::Output {
        // A fn item or non-capturing closure (checked by the builder):
        // called once per rank, like a local worker's initializer.
        let f = entry::conjure::<F>().ok_or("the initializer is not zero-sized")?;
        f(args).into_outcome()
    }
}

impl InitCall {
    pub(crate) fn new<F, A, R>(args: &A) -> InitCall
    where
        F: FnOnce(A) -> R,
        A: Serialize + DeserializeOwned,
        R: EntryReturn,
    {
        let args = crate::wire::to_vec(args).map_err(|e| Fail::Codec {
            context: "the initializer's arguments".into(),
            source: e,
        });
        InitCall {
            runner: runner_of::<Init<F>, A>(),
            args,
        }
    }
}

/// What `.mpi()` adds to a [`PoolBuilder`](crate::PoolBuilder).
pub(crate) struct Options {
    pub(crate) workers: Option<usize>,
    pub(crate) chunksize: Option<usize>,
    pub(crate) max_tasks: u64,
    pub(crate) init: Option<InitCall>,
}

/// A pool over ranks `1..=workers` (default: every rank but 0), after the
/// identity handshake and the initializer on each of them.
///
/// # Errors
/// See [`PoolBuilder::mpi`](crate::PoolBuilder::mpi).
pub(crate) fn build(o: Options) -> Result<Pool> {
    let world = World::get()?;
    if o.max_tasks != 0 {
        return Err(Error::invalid(
            "maxtasksperchild",
            "0 with .mpi() (an MPI rank cannot be replaced)",
            o.max_tasks,
        ));
    }
    let ranks = world.size - 1;
    let workers = o.workers.unwrap_or(ranks);
    if workers == 0 || workers > ranks {
        return Err(Error::invalid(
            "processes",
            format!("1..={ranks} (the worker ranks of this job)"),
            workers,
        ));
    }
    world.handshake(workers, START_TIMEOUT)?;
    world.start_progress()?;
    // Relaxed: a unique number is all that is needed.
    let id = world.next_pool.fetch_add(1, Ordering::Relaxed);
    world.state.lock().add_pool(id);
    let ahead = if world.one_node {
        PIECES_AHEAD_ONE_NODE
    } else {
        PIECES_AHEAD
    };
    let core = Arc::new(MpiPool {
        world,
        id,
        workers,
        ahead,
    });
    let pool = Pool {
        core: core.clone(),
        supervisor: Mutex::new(None),
        chunksize: o.chunksize,
    };
    if let Some(init) = &o.init {
        run_initializer(&core, init)?; // dropping `pool` on error terminates it
    }
    Ok(pool)
}

/// Runs the initializer once on every worker rank of the pool, and waits.
///
/// # Errors
/// [`Error::TaskPanicked`] naming the first rank whose initializer panicked
/// or returned `Err`; `Codec` for arguments that do not encode; `Timeout`.
fn run_initializer(core: &Arc<MpiPool>, init: &InitCall) -> Result<()> {
    let args = init.args.as_ref().map_err(Fail::to_error)?;
    let jobs: Vec<Arc<Job>> = (0..core.workers)
        .map(|i| {
            let job = Arc::new(Job::default());
            let piece = Piece {
                job: job.clone(),
                first: 0,
                runner: init.runner,
                fixed: false,
                data: args.clone(),
                count: 1,
                offsets: Vec::new(),
                retried: false,
            };
            let mut st = core.world.state.lock();
            st.queue(core.id, core.workers, Some(i), &mut std::iter::once(piece));
            st.pump();
            job
        })
        .collect();
    let deadline = Instant::now() + START_TIMEOUT;
    for (i, job) in jobs.iter().enumerate() {
        let done = |ib: &Inbox| ib.answered >= 1 || ib.fail.is_some();
        if !core.wait_job(job, &done, Some(deadline)) {
            return Err(Error::Timeout);
        }
        let ib = std::mem::take(&mut *job.inbox.lock());
        let outcome = job::collect::<std::result::Result<(), String>>(ib, 1)
            .and_then(|mut v| v.pop().ok_or(Error::Closed));
        let who = core.world.state.lock().ranks[i].describe();
        let failed = |m: String| Error::TaskPanicked {
            message: format!("initializer failed in {who}: {m}"),
        };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(m)) => return Err(failed(m)),
            Err(Error::TaskPanicked { message }) => return Err(failed(message)),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
