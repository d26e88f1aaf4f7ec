//! Rank 0's dispatcher: which pieces each worker rank holds, results
//! routed to jobs, pieces sent as ranks have room
//! (`docs/protocols/pool-mpi.md`).
//!
//! One `State` behind the world's mutex, shared by every MPI pool of the
//! process; every MPI call of rank 0 happens under that mutex. Pools are
//! told apart by an id on each piece, so a pool can be terminated while
//! the ranks finish what it had sent (their results are then dropped).

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use mpi::point_to_point::Source;
use mpi::topology::Communicator;
use mpi::traits::Equivalence;

use super::comm::{abort_job, Comm, Outgoing};
use super::proto::{
    self, HelloReply, Identity, INLINE_MAX, MSG_HELLO, MSG_TASK_SPLIT, TAG_ARGS, TAG_CTL, TAG_UP,
};
use crate::pool::dispatch::{Mode, Piece};
use crate::pool::job::Fail;
use crate::pool::lane::{self, Lane, RECYCLE_MIN};
use crate::pool::layout::{ResultsHdr, MSG_FATAL, MSG_RESULTS, RESULTS_HDR};

/// A piece waiting to be sent.
struct Queued {
    pool: u64,
    /// Ranks `1..=workers` serve this pool.
    workers: usize,
    /// Only this worker (index) may run it (an initializer); else the
    /// least loaded one.
    to: Option<usize>,
    piece: Piece,
}

/// What rank 0 keeps of a piece sent to a rank and not fully answered,
/// besides its lane's bookkeeping (`lane.rs`).
struct Sent {
    pool: u64,
    /// The `TASK` message (with the arguments, or followed by them), in
    /// MPI's hands until answered.
    header: Outgoing,
    args: Option<Outgoing>,
    /// Its pool was terminated: results are dropped.
    abandoned: bool,
}

type Flight = lane::Flight<Sent>;

/// Where a rank is in the identity handshake.
pub(super) enum Greeting {
    NotAsked,
    /// `HELLO` sent (its send is kept until the rank took it).
    Asked {
        _hello: Outgoing,
    },
    /// It runs rank 0's build and takes tasks.
    Accepted {
        pid: u32,
        host: String,
    },
    /// It runs another build: never sent a task.
    Refused(String),
}

/// One worker rank, as rank 0 sees it.
pub(super) struct Rank {
    rank: i32,
    pub(super) greeting: Greeting,
    /// The pieces sent to it and not fully answered.
    lane: Lane<Sent>,
}

impl Rank {
    fn accepted(&self) -> bool {
        matches!(self.greeting, Greeting::Accepted { .. })
    }

    pub(super) fn pid(&self) -> Option<u32> {
        match self.greeting {
            Greeting::Accepted { pid, .. } => Some(pid),
            _ => None,
        }
    }

    /// "rank 2 (pid 1234 on host nodeB)", for messages.
    pub(super) fn describe(&self) -> String {
        match &self.greeting {
            Greeting::Accepted { pid, host } => {
                format!("rank {} (pid {pid} on host {host})", self.rank)
            }
            _ => format!("rank {}", self.rank),
        }
    }
}

pub(super) struct State {
    /// `None` once MPI is finalized: nothing may call it any more.
    comm: Option<Comm>,
    pub(super) ranks: Vec<Rank>,
    pending: VecDeque<Queued>,
    /// Every pool not dropped yet, and its mode.
    pools: Vec<(u64, Mode)>,
    /// Buffer the next message is received into (a finished piece's
    /// argument buffer when it is large: results are about that size).
    spare: Vec<u8>,
    /// This build's identity, once a handshake was started.
    own: Option<Identity>,
}

impl State {
    pub(super) fn new(comm: Comm) -> State {
        let size = comm.0.size();
        let ranks = (1..size)
            .map(|rank| Rank {
                rank,
                greeting: Greeting::NotAsked,
                lane: Lane::new(),
            })
            .collect();
        State {
            comm: Some(comm),
            ranks,
            pending: VecDeque::new(),
            pools: Vec::new(),
            spare: Vec::new(),
            own: None,
        }
    }

    pub(super) fn finalized(&self) -> bool {
        self.comm.is_none()
    }

    /// Gives up the communicator (`MPI_Comm_free`), before `MPI_Finalize`.
    pub(super) fn close_comm(&mut self) {
        self.comm = None;
    }

    pub(super) fn comm(&self) -> Option<&Comm> {
        self.comm.as_ref()
    }

    // ------------------------------------------------------------ pools

    pub(super) fn add_pool(&mut self, id: u64) {
        self.pools.push((id, Mode::Running));
    }

    pub(super) fn remove_pool(&mut self, id: u64) {
        self.pools.retain(|(p, _)| *p != id);
    }

    pub(super) fn mode(&self, id: u64) -> Mode {
        self.pools
            .iter()
            .find(|(p, _)| *p == id)
            .map_or(Mode::Terminated, |(_, m)| *m)
    }

    pub(super) fn set_mode(&mut self, id: u64, mode: Mode) {
        if let Some(p) = self.pools.iter_mut().find(|(p, _)| *p == id) {
            p.1 = mode;
        }
    }

    /// Whether pool `id` has pieces queued or unanswered.
    pub(super) fn pool_busy(&self, id: u64) -> bool {
        self.pending.iter().any(|q| q.pool == id)
            || self.ranks.iter().any(|r| {
                r.lane
                    .iter()
                    .any(|f| f.extra.pool == id && !f.extra.abandoned)
            })
    }

    /// Pieces queued here, and pieces unanswered by the ranks (abandoned
    /// ones too: their results still come).
    pub(super) fn queued(&self) -> usize {
        self.pending.len()
    }

    pub(super) fn in_flight(&self) -> usize {
        self.ranks.iter().map(|r| r.lane.len()).sum()
    }

    /// `terminate()` of pool `id`: its queued pieces are dropped and its
    /// unanswered ones abandoned; their jobs fail with `Closed` now.
    pub(super) fn terminate_pool(&mut self, id: u64) {
        self.set_mode(id, Mode::Terminated);
        let (mine, others): (VecDeque<Queued>, VecDeque<Queued>) =
            self.pending.drain(..).partition(|q| q.pool == id);
        self.pending = others;
        for q in mine {
            q.piece.job.fail_all(&Fail::Closed);
        }
        for r in &mut self.ranks {
            for f in r.lane.iter_mut().filter(|f| f.extra.pool == id) {
                f.extra.abandoned = true;
                f.piece.job.fail_all(&Fail::Closed);
            }
        }
    }

    /// Queues pieces of pool `id` (served by ranks `1..=workers`, or by
    /// worker `to` alone) and sends what fits now, before anything else:
    /// an empty poll may yield the core, and the rank can use it then.
    pub(super) fn queue(
        &mut self,
        pool: u64,
        workers: usize,
        to: Option<usize>,
        pieces: &mut dyn Iterator<Item = Piece>,
    ) {
        let reason = match self.mode(pool) {
            Mode::Running | Mode::Closed => None,
            Mode::Joining | Mode::Terminated => Some(Fail::Closed),
        };
        for piece in pieces {
            match &reason {
                Some(f) => piece.job.fail_all(f),
                None => self.pending.push_back(Queued {
                    pool,
                    workers,
                    to,
                    piece,
                }),
            }
        }
        self.dispatch();
    }

    // ------------------------------------------------------------ handshake

    /// Sends the identity handshake to workers `0..n` not asked yet.
    pub(super) fn greet(&mut self, n: usize, exe: &Identity) {
        let Some(comm) = self.comm.as_ref() else {
            return;
        };
        self.own = Some(exe.clone());
        let hello = proto::encode(MSG_HELLO, &proto::Hello { exe: exe.clone() });
        for r in self.ranks.iter_mut().take(n) {
            if matches!(r.greeting, Greeting::NotAsked) {
                r.greeting = Greeting::Asked {
                    _hello: Outgoing::start(comm, r.rank, TAG_CTL, hello.clone()),
                };
            }
        }
    }

    /// Ranks asked for the handshake that have not answered.
    pub(super) fn silent_ranks(&self) -> Vec<String> {
        self.ranks
            .iter()
            .filter(|r| matches!(r.greeting, Greeting::Asked { .. }))
            .map(Rank::describe)
            .collect()
    }

    fn on_hello(&mut self, i: usize, msg: &[u8]) -> Result<(), String> {
        let reply: HelloReply = proto::decode(MSG_HELLO, msg).map_err(|e| e.to_string())?;
        let r = &mut self.ranks[i];
        if !matches!(r.greeting, Greeting::Asked { .. }) {
            return Err("a HELLO reply that was not asked for".into());
        }
        let same = self
            .own
            .as_ref()
            .is_some_and(|own| own.same_build(&reply.exe));
        r.greeting = if reply.accepted && same {
            Greeting::Accepted {
                pid: reply.pid,
                host: reply.host,
            }
        } else {
            Greeting::Refused(format!(
                "rank {} (pid {} on host {}) runs {}",
                r.rank, reply.pid, reply.host, reply.exe
            ))
        };
        Ok(())
    }

    // ------------------------------------------------------------ pump

    /// One round: receive every message that has come, then send queued
    /// pieces to ranks with room. Returns how many messages came.
    pub(super) fn pump(&mut self) -> usize {
        let mut got = 0;
        loop {
            let Some(comm) = self.comm.as_ref() else {
                return got;
            };
            let Some((msg, status)) = comm
                .0
                .any_process()
                .immediate_matched_probe_with_tag(TAG_UP)
            else {
                break;
            };
            let len = status.count(u8::equivalent_datatype());
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            let mut buf = std::mem::take(&mut self.spare);
            // A recycled buffer keeps its length: resizing it down costs
            // nothing, up it zeroes only the new part.
            buf.resize(len, 0);
            msg.matched_receive_into(&mut buf[..]);
            got += 1;
            let src = status.source_rank();
            let i = match usize::try_from(src - 1) {
                Ok(i) if i < self.ranks.len() => i,
                _ => abort_job(&format!(
                    "a pool message from rank {src}, not a worker rank"
                )),
            };
            if let Err(why) = self.on_message(i, buf) {
                abort_job(&format!(
                    "rank 0 cannot follow {}: {why}",
                    self.ranks[i].describe()
                ));
            }
        }
        self.dispatch();
        got
    }

    fn on_message(&mut self, i: usize, msg: Vec<u8>) -> Result<(), String> {
        match msg.first().copied() {
            Some(MSG_RESULTS) => self.on_results(i, msg),
            Some(MSG_FATAL) => {
                let f = self.ranks[i]
                    .lane
                    .pop_front()
                    .ok_or("a FATAL with no piece in flight")?;
                if !f.extra.abandoned {
                    let text = String::from_utf8_lossy(&msg[1..]).into_owned();
                    f.fail_rest(&Fail::Message(text));
                }
                self.land(f);
                Ok(())
            }
            Some(MSG_HELLO) => self.on_hello(i, &msg),
            other => Err(format!(
                "expected a message of kind RESULTS, FATAL or HELLO, found {other:?}"
            )),
        }
    }

    fn on_results(&mut self, i: usize, msg: Vec<u8>) -> Result<(), String> {
        let h = ResultsHdr::decode(&msg).ok_or("a short RESULTS header")?;
        let r = &mut self.ranks[i];
        let f = r
            .lane
            .front_mut()
            .ok_or("results with no piece in flight")?;
        f.check(&h)?;
        let body = msg.len() - RESULTS_HDR;
        if h.fixed && body != h.count as usize * crate::pool::fixed::WIDTH {
            return Err(format!(
                "expected {} bytes of scalar results, found {body}",
                h.count as usize * crate::pool::fixed::WIDTH
            ));
        }
        if f.extra.abandoned {
            self.spare = msg;
        } else {
            f.deliver(&h, msg);
        }
        if let Some(f) = r.lane.answer(h.count, crate::sys::clock::coarse_millis) {
            self.land(f);
        }
        Ok(())
    }

    /// A piece is fully answered: its sends are complete (the rank read
    /// them); a large argument buffer receives the next message.
    fn land(&mut self, f: Flight) {
        let _ = f.extra.header.finish();
        let Some(args) = f.extra.args else {
            return;
        };
        let mut args = args.finish();
        if args.capacity() >= RECYCLE_MIN && args.capacity() > self.spare.capacity() {
            // Its length stays: the next receive overwrites what it needs.
            args.resize(args.capacity(), 0);
            self.spare = args;
        }
    }

    /// Sends queued pieces to accepted ranks with room, least loaded first.
    fn dispatch(&mut self) {
        while let Some(q) = self.pending.front() {
            // Relaxed: a hint; see `Job::deliver`.
            if q.piece.job.cancelled.load(Ordering::Relaxed) {
                self.pending.pop_front();
                continue;
            }
            let pick = match q.to {
                // An initializer goes to its rank whatever that rank holds.
                Some(i) => self.ranks.get(i).filter(|r| r.accepted()).map(|_| i),
                None => self
                    .ranks
                    .iter()
                    .take(q.workers)
                    .enumerate()
                    .filter(|(_, r)| r.accepted() && r.lane.has_room())
                    .min_by_key(|(_, r)| r.lane.items())
                    .map(|(i, _)| i),
            };
            let Some(i) = pick else {
                if q.to.is_some() {
                    // Its rank is gone from service (refused): it cannot run.
                    if let Some(q) = self.pending.pop_front() {
                        q.piece.job.fail_all(&Fail::Closed);
                    }
                    continue;
                }
                return;
            };
            let Some(q) = self.pending.pop_front() else {
                return;
            };
            self.send(i, q);
        }
    }

    fn send(&mut self, i: usize, q: Queued) {
        let Some(comm) = self.comm.as_ref() else {
            q.piece.job.fail_all(&Fail::Closed);
            return;
        };
        let r = &mut self.ranks[i];
        let mut piece = q.piece;
        let hdr = r.lane.task_hdr(&piece);
        let (header, args) = if piece.data.len() <= INLINE_MAX {
            let mut msg = Vec::with_capacity(hdr.len() + piece.data.len());
            msg.extend_from_slice(&hdr);
            msg.extend_from_slice(&piece.data);
            (Outgoing::start(comm, r.rank, TAG_CTL, msg), None)
        } else {
            let mut split = hdr.to_vec();
            split[0] = MSG_TASK_SPLIT;
            let data = std::mem::take(&mut piece.data);
            (
                Outgoing::start(comm, r.rank, TAG_CTL, split),
                Some(Outgoing::start(comm, r.rank, TAG_ARGS, data)),
            )
        };
        let sent = Sent {
            pool: q.pool,
            header,
            args,
            abandoned: false,
        };
        r.lane.push(piece, sent, crate::sys::clock::coarse_millis());
    }
}
