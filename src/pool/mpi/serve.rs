//! A worker rank's life: answer the identity handshake, run the pieces
//! rank 0 sends (the same runners as a local pool's worker process), send
//! their results back, until rank 0 says `STOP` as it exits.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;

use mpi::environment::Universe;
use mpi::point_to_point::Source;
use mpi::topology::{Communicator, Process};
use mpi::traits::Equivalence;

use super::comm::{abort_job, AbortJobIfPanic, Backoff, Comm, Outgoing};
use super::proto::{self, Hello, HelloReply, MSG_HELLO, MSG_TASK_SPLIT, TAG_ARGS, TAG_CTL, TAG_UP};
use crate::pool::layout::{TaskHdr, MSG_FATAL, MSG_STOP, MSG_TASK, TASK_HDR};
use crate::pool::worker::{quiet_panics_in_tasks, Emitter, Sink};

/// Result messages to rank 0, sent without waiting for rank 0 to take
/// them: like a local worker writing into its result ring, a rank goes on
/// with its next piece while rank 0 is busy decoding. At most
/// [`OUT_MAX`] messages are out at once; their buffers are reused.
struct ToRoot<'a> {
    comm: &'a Comm,
    out: RefCell<VecDeque<Outgoing>>,
    free: RefCell<Vec<Vec<u8>>>,
}

/// Result messages a rank may have out before it waits for the oldest.
const OUT_MAX: usize = 4;

impl ToRoot<'_> {
    /// Waits until rank 0 took every message (before `MPI_Finalize`).
    fn drain(&self) {
        for o in self.out.borrow_mut().drain(..) {
            drop(o.finish());
        }
    }
}

impl Sink for ToRoot<'_> {
    fn max_message(&self) -> usize {
        proto::MAX_MESSAGE
    }

    fn send(&self, parts: &[&[u8]]) {
        let mut out = self.out.borrow_mut();
        let mut free = self.free.borrow_mut();
        // Reuse the buffers of messages rank 0 has taken.
        while out.front_mut().is_some_and(Outgoing::test) {
            if let Some(o) = out.pop_front() {
                free.push(o.finish());
            }
        }
        if out.len() >= OUT_MAX {
            if let Some(o) = out.pop_front() {
                free.push(o.finish()); // waits: rank 0 polls while pieces are out
            }
        }
        let mut buf = free.pop().unwrap_or_default();
        buf.clear();
        for p in parts {
            buf.extend_from_slice(p);
        }
        out.push_back(Outgoing::start(self.comm, 0, TAG_UP, buf));
    }
}

/// Receives the next message from rank 0 with `tag` into `buf`, polling
/// (and napping while none comes).
fn receive(root: &Process<'_>, tag: i32, buf: &mut Vec<u8>, backoff: &mut Backoff) {
    let (msg, status) = loop {
        if let Some(m) = root.immediate_matched_probe_with_tag(tag) {
            break m;
        }
        backoff.idle();
    };
    backoff.reset();
    let len = status.count(u8::equivalent_datatype());
    buf.resize(usize::try_from(len).unwrap_or(0), 0);
    msg.matched_receive_into(&mut buf[..]);
}

/// The worker rank's loop; ends the process (status 0) when rank 0 says
/// `STOP`. A panic outside a task ends the whole job at once.
pub(super) fn serve(universe: Universe, comm: Comm) -> ! {
    let guard = AbortJobIfPanic("a worker rank's task loop");
    quiet_panics_in_tasks();
    let root = comm.0.process_at_rank(0);
    let sink = ToRoot {
        comm: &comm,
        out: RefCell::new(VecDeque::new()),
        free: RefCell::new(Vec::new()),
    };
    // Nobody reads it across processes here (a dead rank ends the job).
    let current = AtomicU64::new(0);
    let mut em = Emitter::new(&sink, &current);
    let mut accepted = false;
    let (mut ctl, mut args) = (Vec::new(), Vec::new());
    let mut backoff = Backoff::new();
    loop {
        receive(&root, TAG_CTL, &mut ctl, &mut backoff);
        match ctl.first().copied() {
            Some(kind @ (MSG_TASK | MSG_TASK_SPLIT)) => {
                let (hdr, input) = if kind == MSG_TASK {
                    let Some((hdr, input)) = TaskHdr::decode(&ctl) else {
                        abort_job("a task message that does not decode");
                    };
                    (hdr, input)
                } else {
                    receive(&root, TAG_ARGS, &mut args, &mut backoff);
                    // The same header as an inline one, but for its kind.
                    let mut h = [0u8; TASK_HDR];
                    match ctl.get(1..) {
                        Some(rest) if ctl.len() == TASK_HDR => h[1..].copy_from_slice(rest),
                        _ => abort_job("a task header that does not decode"),
                    }
                    h[0] = MSG_TASK;
                    let Some((hdr, _)) = TaskHdr::decode(&h) else {
                        abort_job("a task header that does not decode");
                    };
                    (hdr, &args[..])
                };
                if !accepted {
                    let why = "a task for a rank that has not accepted rank 0's executable";
                    sink.send(&[&[MSG_FATAL], why.as_bytes()]);
                    continue;
                }
                // SAFETY: this rank accepted the handshake: its executable
                // has rank 0's length and content hash, so the runner
                // offset computed by `runner_of` in rank 0 names the same
                // runner instance in this image.
                unsafe { em.run_piece(&hdr, input) };
            }
            Some(MSG_HELLO) => {
                accepted = hello(&ctl, &sink);
            }
            Some(MSG_STOP) => break,
            other => abort_job(&format!(
                "expected a TASK, HELLO or STOP message from rank 0, found kind {other:?}"
            )),
        }
    }
    std::mem::forget(guard);
    drop(em);
    sink.drain();
    drop(sink);
    drop(comm); // MPI_Comm_free, before MPI_Finalize
    drop(universe); // MPI_Finalize
    std::process::exit(0)
}

/// Answers rank 0's handshake; whether this rank runs the same build.
fn hello(msg: &[u8], sink: &ToRoot<'_>) -> bool {
    let wanted: Hello = match proto::decode(MSG_HELLO, msg) {
        Ok(h) => h,
        Err(e) => abort_job(&format!("a HELLO that does not decode: {e}")),
    };
    let exe = match proto::own_identity() {
        Ok(id) => id.clone(),
        Err(e) => abort_job(&e.to_string()),
    };
    let accepted = exe.same_build(&wanted.exe);
    let reply = HelloReply {
        pid: std::process::id(),
        host: mpi::environment::processor_name().unwrap_or_else(|_| "?".into()),
        exe,
        accepted,
    };
    sink.send(&[&proto::encode(MSG_HELLO, &reply)]);
    accepted
}
