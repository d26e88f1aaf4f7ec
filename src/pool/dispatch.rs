//! The dispatcher: which piece of work each worker holds, results routed to
//! jobs, dead workers reaped and replaced (`docs/protocols/pool.md`).
//!
//! All of it is one `State` behind a mutex. The pool's supervisor thread
//! pumps it when woken by the doorbell or a time slice; a caller waiting for
//! its results pumps it too for a short spin, so the hot path has no thread
//! hand-off. Only the supervisor launches workers (a daemon worker dies with
//! the *thread* that launched it).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::job::{Arrival, Fail, Job};
use super::lane::{Lane, RECYCLE_MIN};
use super::layout::{PoolSeg, ResultsHdr, MSG_FATAL, MSG_INIT_FAILED, MSG_READY, MSG_RESULTS};
use super::worker::WorkerArgs;
use crate::chan::bytes::Messages;
use crate::error::Result;
use crate::process::{Process, ProcessBuilder};
use crate::segment::counters;

/// Launches one worker process for a slot.
pub(crate) type Spawner = Arc<dyn Fn(&ProcessBuilder, WorkerArgs) -> Result<Process> + Send + Sync>;

/// How often liveness is checked while work is in flight, and when idle.
pub(super) const BUSY_SLICE: Duration = Duration::from_millis(5);
pub(super) const IDLE_SLICE: Duration = Duration::from_millis(100);
/// Failed starts in a row after which the pool gives up.
const MAX_START_FAILURES: u32 = 3;

/// A run of consecutive tasks of one job, encoded, ready to send.
pub(crate) struct Piece {
    pub job: Arc<Job>,
    /// Job index of the first task.
    pub first: u64,
    /// Runner offset and hash (see `worker::runner_of`).
    pub runner: (u64, u64),
    /// Arguments are 8-byte scalars (`fixed.rs`), not postcard.
    pub fixed: bool,
    /// Encoded arguments, back to back.
    pub data: Vec<u8>,
    /// Number of tasks.
    pub count: u32,
    /// Byte offset of each task's argument in `data`, for postcard pieces of
    /// more than one task (scalar task `k` is at `8 * k`; a lone task at 0):
    /// a piece of one tiny task costs no allocation for this.
    pub offsets: Vec<u32>,
    /// Already re-dispatched once after a worker's death.
    pub retried: bool,
}

impl Piece {
    pub(crate) fn count(&self) -> u32 {
        self.count
    }

    /// Byte offset of task `k` (`k == count` gives the end).
    pub(super) fn offset(&self, k: u32) -> usize {
        if k >= self.count {
            self.data.len()
        } else if self.fixed {
            k as usize * super::fixed::WIDTH
        } else if self.count == 1 {
            0
        } else {
            self.offsets[k as usize] as usize
        }
    }

    /// Tasks `a..b` as a piece of their own (for re-dispatch).
    pub(super) fn sub(&self, a: u32, b: u32) -> Piece {
        let (start, end) = (self.offset(a), self.offset(b));
        let count = b - a;
        let offsets = if self.fixed || count == 1 {
            Vec::new()
        } else {
            (a..b).map(|k| (self.offset(k) - start) as u32).collect()
        };
        Piece {
            job: self.job.clone(),
            first: self.first + u64::from(a),
            runner: self.runner,
            fixed: self.fixed,
            data: self.data[start..end].to_vec(),
            count,
            offsets,
            retried: true,
        }
    }
}

/// What the parent wants of a slot's worker; the state table (with the
/// messages each phase accepts) is "Worker slots" in `docs/protocols/pool.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Starting,
    Serving,
    Retiring,
    Stopping,
    Vacant,
}

pub(super) struct Worker {
    pub(super) slot: u32,
    /// Its process has sent `READY` (or `INIT_FAILED`): its one start-up
    /// message. What the worker has said, kept apart from `phase` (what the
    /// parent wants of it): `join` may tell a worker to stop before that
    /// message arrives, and it still arrives.
    pub(super) reported: bool,
    /// It broke the protocol and was killed: its ring is not read again.
    pub(super) corrupt: bool,
    pub(super) proc: Option<Process>,
    pub(super) phase: Phase,
    pub(super) tasks: Messages,
    pub(super) results: Messages,
    /// The pieces sent to its worker and not fully answered.
    pub(super) lane: Lane,
    /// Pieces sent to its process (for `maxtasksperchild`).
    pub(super) assigned: u64,
    /// The pid of the worker that last served this slot and ended (for the
    /// "worker replaced" event).
    pub(super) ended_pid: Option<u32>,
}

/// The pool's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Running,
    /// `close()`: no new calls; work already taken goes on.
    Closed,
    /// `join()`: workers told to stop.
    Joining,
    /// `terminate()` or drop.
    Terminated,
}

pub(crate) struct State {
    pub(super) seg: PoolSeg,
    pub(super) workers: Vec<Worker>,
    pub(super) pending: VecDeque<Piece>,
    pub(super) spawner: Spawner,
    pub(super) builder: ProcessBuilder,
    pub(super) max_tasks: u64,
    pub(crate) mode: Mode,
    /// Set when the pool cannot serve any more; every task fails with it.
    pub(crate) broken: Option<Fail>,
    pub(super) start_failures: u32,
    /// When to check liveness next (coarse milliseconds).
    pub(super) next_check: u64,
    pub(super) msg: Vec<u8>,
}

impl State {
    pub(super) fn new(
        seg: &PoolSeg,
        size: usize,
        spawner: Spawner,
        builder: ProcessBuilder,
        max_tasks: u64,
    ) -> Result<State> {
        let mut workers = Vec::with_capacity(size);
        for slot in 0..size as u32 {
            workers.push(Worker {
                slot,
                reported: false,
                corrupt: false,
                proc: None,
                phase: Phase::Vacant,
                tasks: seg.task_ring(slot)?,
                results: seg.result_ring(slot)?,
                lane: Lane::new(),
                assigned: 0,
                ended_pid: None,
            });
        }
        let state = State {
            seg: seg.clone(),
            workers,
            pending: VecDeque::new(),
            spawner,
            builder,
            max_tasks,
            mode: Mode::Running,
            broken: None,
            start_failures: 0,
            next_check: 0,
            msg: Vec::new(),
        };
        Ok(state)
    }

    /// Why a new piece cannot be served, if it cannot.
    pub(crate) fn fail_reason(&self) -> Option<Fail> {
        // After join() the workers are gone (or going): nothing would run it.
        if matches!(self.mode, Mode::Terminated | Mode::Joining) {
            return Some(Fail::Closed);
        }
        self.broken.clone()
    }

    pub(super) fn finished(&self) -> bool {
        match self.mode {
            Mode::Terminated => true,
            Mode::Joining => self.workers.iter().all(|w| w.proc.is_none()),
            _ => false,
        }
    }

    pub(super) fn busy_with_tasks(&self) -> bool {
        !self.pending.is_empty() || self.workers.iter().any(|w| !w.lane.is_empty())
    }

    pub(super) fn busy(&self) -> bool {
        self.busy_with_tasks()
            || self
                .workers
                .iter()
                .any(|w| matches!(w.phase, Phase::Starting | Phase::Vacant | Phase::Stopping))
    }

    /// One round: drain results, check liveness (every slice), send
    /// pending pieces, launch replacements (supervisor only).
    pub(crate) fn pump(&mut self, may_spawn: bool) {
        for i in 0..self.workers.len() {
            self.drain(i);
        }
        let now = crate::sys::clock::coarse_millis();
        if now >= self.next_check || may_spawn {
            let slice = if self.busy() { BUSY_SLICE } else { IDLE_SLICE };
            self.next_check = now + slice.as_millis() as u64;
            for i in 0..self.workers.len() {
                self.check_alive(i);
            }
        }
        self.dispatch();
        if may_spawn {
            self.fill_vacancies();
        }
    }

    /// Reads every message the worker of slot `i` has published (none from
    /// a vacant slot or a worker killed as broken: not read again).
    fn drain(&mut self, i: usize) {
        if self.workers[i].proc.is_none() || self.workers[i].corrupt {
            return;
        }
        let mut msg = std::mem::take(&mut self.msg);
        loop {
            match self.workers[i].results.try_recv(&mut msg) {
                Ok(true) => {
                    if let Err(why) = self.on_message(i, &mut msg) {
                        self.kill_broken(i, &why);
                        break;
                    }
                }
                Ok(false) => break,
                Err(e) => {
                    self.kill_broken(i, &e.to_string());
                    break;
                }
            }
        }
        self.msg = msg;
    }

    fn on_message(&mut self, i: usize, msg: &mut Vec<u8>) -> std::result::Result<(), String> {
        let w = &mut self.workers[i];
        match msg.first().copied() {
            // The start-up message comes once, first; a worker told to stop
            // meanwhile (`Stopping`) still sends it, then reads its STOP.
            Some(MSG_READY) if !w.reported => {
                w.reported = true;
                if w.phase == Phase::Starting {
                    w.phase = Phase::Serving;
                }
                self.start_failures = 0;
                Ok(())
            }
            Some(MSG_INIT_FAILED) if !w.reported => {
                w.reported = true;
                let pid = w.proc.as_ref().map_or(0, Process::pid);
                let text = String::from_utf8_lossy(&msg[1..]);
                self.broken = Some(Fail::Message(format!(
                    "pool initializer failed in worker {pid}: {text}"
                )));
                let f = self.broken.clone().unwrap_or(Fail::Closed);
                self.fail_everything(&f);
                Ok(())
            }
            Some(MSG_FATAL) => {
                let front = w
                    .lane
                    .pop_front()
                    .ok_or("a FATAL message with no task in flight")?;
                let text = String::from_utf8_lossy(&msg[1..]).into_owned();
                front.fail_rest(&Fail::Message(text));
                Ok(())
            }
            Some(MSG_RESULTS) => {
                let h = ResultsHdr::decode(msg).ok_or("a short RESULTS header")?;
                let front = w
                    .lane
                    .front_mut()
                    .ok_or("results with no task in flight")?;
                front.check(&h)?;
                front.deliver(&h, std::mem::take(msg));
                if let Some(done) = w.lane.answer(h.count, crate::sys::clock::coarse_millis) {
                    // A large argument buffer receives the next message
                    // (a piece's results are about its arguments' size);
                    // a small one would only be grown (`realloc` cost
                    // more than a fresh `malloc` for one-task pieces).
                    if done.piece.data.capacity() >= RECYCLE_MIN {
                        *msg = done.piece.data;
                        msg.clear();
                    }
                }
                Ok(())
            }
            Some(k @ (MSG_READY | MSG_INIT_FAILED)) => Err(format!(
                "expected one start-up message (READY or INIT_FAILED) per worker, found kind {k} again"
            )),
            other => Err(format!(
                "expected a worker message kind 1..=4, found {other:?}"
            )),
        }
    }

    /// A worker broke the protocol: kill it; the next liveness check then
    /// handles it as a death (what is left in its ring is not read).
    #[cold]
    fn kill_broken(&mut self, i: usize, why: &str) {
        let w = &mut self.workers[i];
        w.corrupt = true;
        if let Some(p) = &w.proc {
            eprintln!("shmproc pool: killing worker {}: {why}", p.pid());
            let _ = p.kill();
        }
        self.next_check = 0;
    }

    fn check_alive(&mut self, i: usize) {
        let Some(p) = &self.workers[i].proc else {
            return;
        };
        if p.is_alive() {
            return;
        }
        let code = p.exitcode();
        let pid = p.pid();
        if !self.workers[i].corrupt {
            self.drain(i); // what it published before it died
        }
        self.on_exit(i, pid, code);
    }

    /// A worker ended (already reaped): fail or re-dispatch what it held.
    #[cold]
    fn on_exit(&mut self, i: usize, pid: u32, code: Option<i32>) {
        let slot = self.workers[i].slot;
        // SYNC POINT: pool-current. Acquire pairs with the worker's Release
        // (the reap already ordered it; this says so).
        let current = self
            .seg
            .current(slot)
            .map_or(0, |c| c.load(Ordering::Acquire));
        let held = match (current >> 32) as u32 {
            seq if current & 0xffff_ffff != 0 => Some((seq, (current & 0xffff_ffff) as u32 - 1)),
            _ => None,
        };
        let w = &mut self.workers[i];
        w.proc = None;
        w.corrupt = false;
        let phase = w.phase;
        let inflight = w.lane.take_all();
        w.phase = Phase::Vacant;
        let signal = code.filter(|c| *c < 0).map(|c| -c);
        self.workers[i].ended_pid = Some(pid);
        if code == Some(0) && inflight.is_empty() {
            log::debug!("shmproc: pool worker {pid} (slot {slot}) exited");
        } else {
            log::info!(
                "shmproc: pool worker {pid} (slot {slot}) ended with {code:?} holding {} piece(s)",
                inflight.len()
            );
        }
        let seg = self.seg.segment().clone();
        if phase == Phase::Starting {
            self.start_failures += 1;
            if self.start_failures >= MAX_START_FAILURES && self.broken.is_none() {
                let f = Fail::WorkerDied { pid, signal };
                self.broken = Some(f.clone());
                self.fail_everything(&f);
            }
        }
        let fail = Fail::WorkerDied { pid, signal };
        let mut redo = Vec::new();
        for f in inflight {
            let count = f.piece.count();
            let answered = f.answered();
            let held_k = held
                .filter(|(seq, k)| *seq == f.seq() && *k >= answered && *k < count)
                .map(|(_, k)| k);
            let fail_one = |k: u32| {
                seg.bump(counters::TASKS_FAILED);
                f.piece.job.deliver(Arrival::Failed {
                    index: f.piece.first + u64::from(k),
                    fail: fail.clone(),
                })
            };
            if f.piece.retried || self.broken.is_some() {
                (answered..count).for_each(fail_one);
                continue;
            }
            match held_k {
                Some(k) => {
                    fail_one(k);
                    if k > answered {
                        redo.push(f.piece.sub(answered, k));
                    }
                    if k + 1 < count {
                        redo.push(f.piece.sub(k + 1, count));
                    }
                }
                None => redo.push(f.piece.sub(answered, count)),
            }
        }
        for p in redo.into_iter().rev() {
            self.pending.push_front(p);
        }
    }

    /// Sends pending pieces to serving workers with room, least loaded first.
    fn dispatch(&mut self) {
        self.dispatch_written();
        // One shared store per worker for all pieces written this round.
        for w in &self.workers {
            w.tasks.publish();
        }
    }

    /// Writes pending pieces into the rings of serving workers with room,
    /// least loaded first, without publishing them.
    fn dispatch_written(&mut self) {
        while let Some(p) = self.pending.front() {
            // Relaxed: a hint; see `Job::deliver`.
            if p.job.cancelled.load(Ordering::Relaxed) {
                self.pending.pop_front();
                continue;
            }
            let pick = self
                .workers
                .iter()
                .enumerate()
                .filter(|(_, w)| w.phase == Phase::Serving && w.lane.has_room())
                .min_by_key(|(_, w)| w.lane.items())
                .map(|(i, _)| i);
            let Some(i) = pick else {
                return;
            };
            let w = &mut self.workers[i];
            let hdr = w.lane.task_hdr(p);
            match w.tasks.try_write(&[&hdr, &p.data]) {
                Ok(true) => {}
                Ok(false) => return, // ring full: wait for this worker to catch up
                Err(e) => {
                    // Callers check sizes; a piece that still does not fit fails.
                    let p = self.pending.pop_front().unwrap_or_else(|| unreachable!());
                    let fail = match e {
                        crate::Error::MessageTooLarge { size, max } => Fail::TooLarge { size, max },
                        other => Fail::Message(other.to_string()),
                    };
                    for k in 0..p.count() {
                        p.job.deliver(Arrival::Failed {
                            index: p.first + u64::from(k),
                            fail: fail.clone(),
                        });
                    }
                    continue;
                }
            }
            let Some(piece) = self.pending.pop_front() else {
                return;
            };
            let w = &mut self.workers[i];
            w.lane.push(piece, (), crate::sys::clock::coarse_millis());
            w.assigned += 1;
            if self.max_tasks != 0 && w.assigned >= self.max_tasks {
                w.phase = Phase::Retiring;
            }
        }
    }

    fn fill_vacancies(&mut self) {
        if self.broken.is_some() || matches!(self.mode, Mode::Joining | Mode::Terminated) {
            return;
        }
        for i in 0..self.workers.len() {
            if self.workers[i].phase != Phase::Vacant {
                continue;
            }
            let w = &mut self.workers[i];
            w.tasks.reset();
            w.results.reset();
            if let Ok(c) = self.seg.current(w.slot) {
                // Relaxed: the new worker is launched after this store.
                c.store(0, Ordering::Relaxed);
            }
            w.lane.restart();
            w.assigned = 0;
            let args = WorkerArgs {
                seg: self.seg.clone(),
                slot: w.slot,
                max_tasks: self.max_tasks,
            };
            match (self.spawner)(&self.builder, args) {
                Ok(p) => {
                    let w = &mut self.workers[i];
                    if let Some(old) = w.ended_pid.take() {
                        self.seg.segment().bump(counters::WORKERS_REPLACED);
                        log::info!(
                            "shmproc: pool worker {old} (slot {}) replaced by {}",
                            w.slot,
                            p.pid()
                        );
                    }
                    w.proc = Some(p);
                    w.phase = Phase::Starting;
                    w.reported = false;
                }
                Err(e) => {
                    self.start_failures += 1;
                    if self.start_failures >= MAX_START_FAILURES {
                        let f = Fail::Message(format!("cannot launch pool workers: {e}"));
                        self.broken = Some(f.clone());
                        self.fail_everything(&f);
                        return;
                    }
                }
            }
        }
    }

    /// Fails every task queued or in flight, and marks their jobs failed.
    pub(crate) fn fail_everything(&mut self, f: &Fail) {
        for p in self.pending.drain(..) {
            p.job.fail_all(f);
        }
        for w in &mut self.workers {
            for x in w.lane.take_all() {
                x.piece.job.fail_all(f);
            }
        }
    }
}
