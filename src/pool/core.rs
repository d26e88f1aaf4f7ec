//! [`Core`]: what the `Pool`, its jobs and its supervisor thread share, and
//! the ways they drive the dispatcher state (`dispatch.rs`): submit work,
//! wait for a job (pumping while spinning), the supervisor's loop,
//! `terminate` and `join`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::dispatch::{Mode, Phase, Piece, Spawner, State, BUSY_SLICE, IDLE_SLICE};
use super::job::{Fail, Job};
use super::layout::{PoolSeg, MSG_STOP, TASK_HDR};
use crate::error::Result;
use crate::process::{Process, ProcessBuilder};
use crate::sync::park::Futex;

/// Grace between SIGTERM and SIGKILL in `terminate`.
const TERM_GRACE: Duration = Duration::from_millis(100);

/// Everything the `Pool`, its jobs and its supervisor share.
pub(crate) struct Core {
    pub(crate) seg: PoolSeg,
    pub(crate) state: Mutex<State>,
    /// Callers spinning on the state right now (the supervisor then does
    /// not arm the doorbell, so workers do not pay for waking it).
    pumpers: AtomicUsize,
    /// Callers asleep on a job's condvar: only then (or with work queued
    /// in the parent) must results wake the supervisor.
    sleepers: AtomicUsize,
    pub(crate) size: usize,
}

impl Core {
    pub(crate) fn new(
        size: usize,
        spawner: Spawner,
        builder: ProcessBuilder,
        max_tasks: u64,
    ) -> Result<Arc<Core>> {
        let seg = PoolSeg::create(size as u32, super::layout::RING_CAP)?;
        let state = State::new(&seg, size, spawner, builder, max_tasks)?;
        Ok(Arc::new(Core {
            seg,
            state: Mutex::new(state),
            pumpers: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            size,
        }))
    }

    /// The largest encoded argument a task may have.
    pub(crate) fn max_arg(&self) -> usize {
        (super::layout::RING_CAP / 2) as usize - TASK_HDR
    }

    /// Queues pieces and sends what fits now.
    pub(crate) fn submit(&self, pieces: impl IntoIterator<Item = Piece>) {
        let mut st = self.state.lock();
        if let Some(f) = st.fail_reason() {
            for p in pieces {
                p.job.fail_all(&f);
            }
            return;
        }
        st.pending.extend(pieces);
        st.pump(false);
        // Work left queued here needs the supervisor (to send it when a
        // worker has room); what went to the workers does not.
        let queued = !st.pending.is_empty();
        drop(st);
        if queued {
            self.wake_supervisor();
        }
    }

    /// Wakes the supervisor, registered or dozing: bumps the doorbell
    /// first, so a wake-up that comes between its decision to sleep and its
    /// futex wait is not lost (the wait finds another value and returns).
    pub(crate) fn wake_supervisor(&self) {
        self.seg.doorbell().bump_wake(&Futex, u32::MAX);
    }

    /// Waits until `done()` holds (checked under the job's inbox lock) or
    /// `deadline`; pumps the dispatcher while spinning. Returns `done()`.
    pub(crate) fn wait_job(
        &self,
        job: &Job,
        done: impl Fn(&super::job::Inbox) -> bool,
        deadline: Option<Instant>,
    ) -> bool {
        super::job::wait_job(
            job,
            &done,
            deadline,
            super::job::Pumping {
                pumpers: &self.pumpers,
                pump: &|| {
                    if let Some(mut st) = self.state.try_lock() {
                        st.pump(false);
                    }
                },
                add_sleeper: &|| self.add_sleeper(),
                remove_sleeper: &|| self.remove_sleeper(),
                spin: crate::sync::wait::Spin::polling(),
            },
        )
    }

    /// Someone will sleep waiting for a job (in `wait_job`, or an armed
    /// `AsyncResult`): results must wake the supervisor, so it pumps them.
    pub(crate) fn add_sleeper(&self) {
        // SeqCst: the supervisor must see us asleep before it decides not to
        // register on the doorbell (it re-checks after; see `supervise`).
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        self.wake_supervisor();
    }

    /// That sleep is over.
    pub(crate) fn remove_sleeper(&self) {
        // Relaxed: a hint for the supervisor's next round.
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
    }

    /// The supervisor thread's loop: pump, then sleep on the doorbell (or a
    /// time slice while callers pump), until terminated or joined.
    pub(crate) fn supervise(self: Arc<Core>) {
        let bell = self.seg.doorbell();
        loop {
            // Read before the state that decides how to sleep (see
            // `wake_supervisor`).
            let seen = bell.seen();
            let (slice, queued) = {
                let mut st = self.state.lock();
                st.pump(true);
                if st.finished() {
                    return;
                }
                let slice = if st.busy() { BUSY_SLICE } else { IDLE_SLICE };
                (slice, !st.pending.is_empty())
            };
            let deadline = Some(Instant::now() + slice);
            // Results need the supervisor only if someone sleeps waiting for
            // them or work is queued here for a worker with room; otherwise
            // a caller pumps for itself, and waking us would only make two
            // threads fight over the state. Relaxed/SeqCst: see `wait_job`;
            // a stale value costs one slice at most.
            let wanted = queued || self.sleepers.load(Ordering::SeqCst) > 0;
            if self.pumpers.load(Ordering::Relaxed) > 0 || !wanted {
                // Unregistered: workers' results do not wake us.
                bell.doze(&Futex, seen, deadline);
                continue;
            }
            // Registered: a worker's publish wakes us (SYNC POINT: dekker
            // with the result rings' publish).
            bell.sleep(&Futex, seen, deadline, || {
                let st = self.state.lock();
                st.workers.iter().any(|w| w.results.has_data()) || st.finished()
            });
        }
    }

    /// `terminate()`: signal every worker, reap it, fail what is left.
    pub(crate) fn terminate(&self) {
        let mut st = self.state.lock();
        st.mode = Mode::Terminated;
        st.fail_everything(&Fail::Closed);
        let procs: Vec<Process> = st
            .workers
            .iter_mut()
            .filter_map(|w| w.proc.take())
            .collect();
        for w in &mut st.workers {
            w.phase = Phase::Vacant;
        }
        drop(st);
        for p in &procs {
            let _ = p.terminate();
        }
        let deadline = Instant::now() + TERM_GRACE;
        for p in &procs {
            let left = deadline.saturating_duration_since(Instant::now());
            if p.join_timeout(left).is_err() {
                let _ = p.kill();
                let _ = p.join();
            }
        }
        drop(procs);
        // The launcher's registry keeps reaped children (and their pidfds)
        // until its next sweep: sweep now.
        crate::process::active_children();
        self.wake_supervisor();
    }

    /// `join()` after `close()`: let the queued work finish, stop the
    /// workers, reap them.
    pub(crate) fn join_workers(&self) {
        loop {
            let mut st = self.state.lock();
            if st.mode == Mode::Terminated {
                return;
            }
            st.pump(false);
            if !st.busy_with_tasks() {
                st.mode = Mode::Joining;
                for w in &mut st.workers {
                    if w.proc.is_some() && w.phase != Phase::Stopping {
                        w.phase = Phase::Stopping;
                        // A full ring cannot be: nothing is in flight.
                        let _ = w.tasks.try_send(&[&[MSG_STOP]]);
                    }
                }
                if st.workers.iter().all(|w| w.proc.is_none()) {
                    drop(st);
                    crate::process::active_children(); // see `terminate`
                    self.wake_supervisor();
                    return;
                }
            }
            drop(st);
            self.wake_supervisor();
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// `(serving, starting)` worker counts and the pool's failure, if any.
    pub(crate) fn startup_status(&self) -> (usize, Option<Fail>) {
        let st = self.state.lock();
        let serving = st
            .workers
            .iter()
            .filter(|w| w.phase == Phase::Serving)
            .count();
        (serving, st.broken.clone())
    }

    /// Pids of the live workers.
    pub(crate) fn pids(&self) -> Vec<u32> {
        let st = self.state.lock();
        st.workers
            .iter()
            .filter_map(|w| w.proc.as_ref().map(Process::pid))
            .collect()
    }
}
