//! A worker rank's life: answer the identity handshake, run the pieces
//! rank 0 sends (the same runners as a local pool's worker process), send
//! their results back, until rank 0 says `STOP` as it exits.

use std::cell::RefCell;
use std::sync::atomic::AtomicU64;

use mpi::environment::Universe;
use mpi::point_to_point::{Destination, Source};
use mpi::topology::{Communicator, Process};
use mpi::traits::Equivalence;

use super::comm::{abort_job, AbortJobIfPanic, Backoff, Comm};
use super::proto::{self, Hello, HelloReply, MSG_HELLO, MSG_TASK_SPLIT, TAG_ARGS, TAG_CTL, TAG_UP};
use crate::pool::layout::{TaskHdr, MSG_FATAL, MSG_STOP, MSG_TASK, TASK_HDR};
use crate::pool::worker::{quiet_panics_in_tasks, Emitter, Sink};

/// Result messages to rank 0, one blocking send each.
struct ToRoot<'a> {
    root: Process<'a>,
    buf: RefCell<Vec<u8>>,
}

impl Sink for ToRoot<'_> {
    fn max_message(&self) -> usize {
        proto::MAX_MESSAGE
    }

    fn send(&self, parts: &[&[u8]]) {
        let mut buf = self.buf.borrow_mut();
        buf.clear();
        for p in parts {
            buf.extend_from_slice(p);
        }
        // Blocking: rank 0 polls while it has pieces out, so this returns
        // once it takes the message (a large one is copied straight into
        // its buffer).
        self.root.send_with_tag(&buf[..], TAG_UP);
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
        root: comm.0.process_at_rank(0),
        buf: RefCell::new(Vec::new()),
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
