//! [`Backend`]: what a [`Pool`](super::Pool), its [`AsyncResult`](super::AsyncResult)s
//! and [`Imap`](super::Imap)s need from the machinery that runs the pieces.
//! Two implement it: [`Core`] (worker processes on this host, over shared
//! memory) and, with the `mpi` feature, the pool over MPI ranks
//! (`mpi/pool.rs`). Everything above it (encoding arguments into pieces,
//! the chunksize rule, decoding results into jobs, the iterators) is shared.
//!
//! The methods are called once per piece or per wait, never per task, so
//! the dynamic dispatch costs nothing measurable.

use std::time::Instant;

use super::core::Core;
use super::dispatch::{Mode, Piece};
use super::job::{Fail, Inbox, Job};
use crate::error::{Error, Result};

/// Pieces per worker encoded ahead of the results, unless a backend needs
/// more. Measured on `Pool::new(2)`, `map` of 1M tiny tasks (medians of 100
/// maps): 4 gives 400-410 M tasks/s, 8 395-405 M, 16 355 M (more bytes in
/// flight, colder caches).
pub(crate) const PIECES_AHEAD: usize = 4;

/// The workers behind a pool, seen from the calls that use them.
pub(crate) trait Backend: Send + Sync {
    /// Number of workers.
    fn size(&self) -> usize;

    /// The largest encoded argument a task may have.
    fn max_arg(&self) -> usize;

    /// Pieces per worker that `map` and `imap` encode ahead of the results
    /// (the window; refilled by half). Deep enough that a worker never runs
    /// dry while the caller encodes the next half or decodes.
    fn pieces_ahead(&self) -> usize {
        PIECES_AHEAD
    }

    /// Queues pieces and sends what fits now.
    fn submit(&self, pieces: &mut dyn Iterator<Item = Piece>);

    /// Waits until `done()` holds (checked under the job's inbox lock) or
    /// `deadline`, moving results along while it spins. Returns `done()`.
    fn wait_job(&self, job: &Job, done: &dyn Fn(&Inbox) -> bool, deadline: Option<Instant>)
        -> bool;

    /// Moves results along without waiting (for `AsyncResult::ready`).
    fn poll(&self);

    /// `Ok` while the pool takes work; else why not (closed, terminated,
    /// broken).
    fn running(&self) -> std::result::Result<(), Fail>;

    /// `close()`: no new calls; work already submitted goes on.
    fn close(&self);

    /// `join()` after `close()`: waits until the submitted work is done and
    /// the workers are released.
    ///
    /// # Errors
    /// `InvalidArgument` while the pool is still running.
    fn join(&self) -> Result<()>;

    /// `terminate()`: unfinished tasks fail with `Closed`, now.
    fn terminate(&self);

    /// Process ids of the workers.
    fn pids(&self) -> Vec<u32>;

    /// Wakes the thread that drives the backend, so that it sees a change
    /// of mode at once.
    fn wake(&self);

    /// Someone will sleep waiting for a job outside `wait_job` (an armed
    /// `AsyncResult`: `shmproc::wait`, `.await`): results must move along
    /// without a caller pumping them.
    fn add_sleeper(&self) {}

    /// That sleep is over.
    fn remove_sleeper(&self) {}
}

/// The error of `join()` on a pool that is still running.
pub(crate) fn join_while_running() -> Error {
    Error::invalid(
        "pool state",
        "a pool after close() or terminate()",
        "a running pool",
    )
}

impl Backend for Core {
    fn add_sleeper(&self) {
        Core::add_sleeper(self);
    }

    fn remove_sleeper(&self) {
        Core::remove_sleeper(self);
    }

    fn size(&self) -> usize {
        self.size
    }

    fn max_arg(&self) -> usize {
        Core::max_arg(self)
    }

    fn submit(&self, pieces: &mut dyn Iterator<Item = Piece>) {
        Core::submit(self, pieces);
    }

    fn wait_job(
        &self,
        job: &Job,
        done: &dyn Fn(&Inbox) -> bool,
        deadline: Option<Instant>,
    ) -> bool {
        Core::wait_job(self, job, done, deadline)
    }

    fn poll(&self) {
        if let Some(mut st) = self.state.try_lock() {
            st.pump(false);
        }
    }

    fn running(&self) -> std::result::Result<(), Fail> {
        let st = self.state.lock();
        if st.mode != Mode::Running {
            return Err(Fail::Closed);
        }
        match &st.broken {
            Some(f) => Err(f.clone()),
            None => Ok(()),
        }
    }

    fn close(&self) {
        let mut st = self.state.lock();
        if st.mode == Mode::Running {
            st.mode = Mode::Closed;
        }
    }

    fn join(&self) -> Result<()> {
        if self.state.lock().mode == Mode::Running {
            return Err(join_while_running());
        }
        self.join_workers();
        Ok(())
    }

    fn terminate(&self) {
        Core::terminate(self);
    }

    fn pids(&self) -> Vec<u32> {
        Core::pids(self)
    }

    fn wake(&self) {
        self.wake_supervisor();
    }
}
