//! The pool's own MPI communicator, sends that own their buffer, ending the
//! job, and the poll-then-nap wait both sides use for incoming messages.

use std::os::raw::c_int;
use std::time::Duration;

use mpi::ffi;
use mpi::raw::AsRaw;
use mpi::topology::{Communicator, SimpleCommunicator};

use crate::sync::wait::Spin;

/// A duplicate of `MPI_COMM_WORLD` made in `init()` on every rank, so that
/// a program's own MPI traffic can never be taken for the pool's.
pub(super) struct Comm(pub(super) SimpleCommunicator);

// SAFETY: an MPI communicator handle is a process-wide object, valid from
// any thread. MPI was initialized with `MPI_THREAD_SERIALIZED` (checked
// before any pool uses it), and every call on rank 0 is made under the
// dispatcher's mutex, so no two threads call MPI at the same time.
unsafe impl Send for Comm {}
// SAFETY: as for Send.
unsafe impl Sync for Comm {}

/// Ends the whole job at once: the message, then `MPI_Abort` (MPI is
/// fail-stop: no rank can leave a job alone). `mpirun` prints which rank
/// aborted and exits with `code`.
#[cold]
pub(super) fn abort_job(msg: &str) -> ! {
    eprintln!(
        "shmproc MPI pool (rank {}, pid {}): {msg}; aborting the MPI job",
        SimpleCommunicator::world().rank(),
        std::process::id()
    );
    SimpleCommunicator::world().abort(EXIT_ABORT)
}

/// The exit status `abort_job` asks `mpirun` for.
const EXIT_ABORT: c_int = 70;

/// Ends the job if dropped while its thread unwinds: a panic outside a task
/// (in the worker's loop or rank 0's progress thread) leaves state nobody
/// can trust, and unwinding to `MPI_Finalize` would hang the other ranks.
pub(super) struct AbortJobIfPanic(pub(super) &'static str);

impl Drop for AbortJobIfPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            abort_job(&format!("a panic outside a task in {}", self.0));
        }
    }
}

/// A non-blocking send that owns its bytes until MPI is done with them.
pub(super) struct Outgoing {
    buf: Vec<u8>,
    req: ffi::MPI_Request,
}

// SAFETY: a request handle is a process-wide MPI object, valid from any
// thread; its calls (`MPI_Wait`) are serialized like every other (see
// `Comm`), and the buffer it reads is owned here.
unsafe impl Send for Outgoing {}

impl Outgoing {
    /// Starts sending `buf` to `dest` with `tag` (`MPI_Isend`).
    ///
    /// `buf` must be at most [`MAX_MESSAGE`](super::proto::MAX_MESSAGE)
    /// bytes (callers check it).
    pub(super) fn start(comm: &Comm, dest: c_int, tag: c_int, buf: Vec<u8>) -> Outgoing {
        let count = c_int::try_from(buf.len()).unwrap_or_else(|_| {
            abort_job(&format!("a message of {} bytes (over 2 GiB)", buf.len()))
        });
        // SAFETY: reading an extern constant of the MPI library, set at load.
        let mut req = unsafe { ffi::RSMPI_REQUEST_NULL };
        // SAFETY:
        // - `buf`'s heap block is owned by the returned value, which neither
        //   changes nor frees it before the request completes (`wait`, or
        //   `Drop` waits);
        // - `count` bytes of `MPI_UINT8_T` are exactly `buf`;
        // - `comm` is a live communicator and `req` a writable handle.
        unsafe {
            ffi::MPI_Isend(
                buf.as_ptr().cast(),
                count,
                ffi::RSMPI_UINT8_T,
                dest,
                tag,
                comm.0.as_raw(),
                &mut req,
            );
        }
        Outgoing { buf, req }
    }

    /// Waits until MPI no longer needs the bytes (at once when the
    /// receiver has answered them) and returns them.
    pub(super) fn finish(mut self) -> Vec<u8> {
        self.complete();
        std::mem::take(&mut self.buf)
    }

    /// Whether MPI is done with the bytes (`MPI_Test`: never waits).
    pub(super) fn test(&mut self) -> bool {
        let mut done: c_int = 0;
        // SAFETY: reading an extern constant; `req` is a handle `MPI_Isend`
        // set (or null: then done at once), `MPI_Test` sets it to null when
        // it completes; `done` is a writable int.
        unsafe {
            if self.req == ffi::RSMPI_REQUEST_NULL {
                return true;
            }
            ffi::MPI_Test(&mut self.req, &mut done, ffi::RSMPI_STATUS_IGNORE);
        }
        done != 0
    }

    fn complete(&mut self) {
        // SAFETY: reading an extern constant; `req` is a handle `MPI_Isend`
        // set (or already null), and `MPI_Wait` sets it back to null.
        unsafe {
            if self.req != ffi::RSMPI_REQUEST_NULL {
                ffi::MPI_Wait(&mut self.req, ffi::RSMPI_STATUS_IGNORE);
            }
        }
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        if mpi::environment::is_finalized() {
            // Nothing may call MPI any more: keep the bytes for good (the
            // process is exiting) rather than free them under a live request.
            std::mem::forget(std::mem::take(&mut self.buf));
            return;
        }
        self.complete();
    }
}

/// The first nap, and the longest: naps double while nothing comes, so an
/// idle rank wakes at most every millisecond.
const NAP_MIN: Duration = Duration::from_micros(20);
const NAP_MAX: Duration = Duration::from_millis(1);

/// Poll-then-nap for message arrival (MPI has no wait that a futex or a
/// condvar could share, and its blocking calls poll at 100% of a core): the
/// spin phase of the one policy (`sync/wait.rs`), then naps.
pub(super) struct Backoff {
    spin: Spin,
    nap: Duration,
}

impl Backoff {
    pub(super) fn new() -> Backoff {
        Backoff {
            spin: Spin::new(),
            nap: NAP_MIN,
        }
    }

    /// Something came: poll busily again.
    pub(super) fn reset(&mut self) {
        *self = Backoff::new();
    }

    /// Nothing came: a step of the spin phase, or (after it) a nap that
    /// doubles while nothing comes.
    pub(super) fn idle(&mut self) {
        if self.spin.step() {
            return;
        }
        std::thread::sleep(self.nap);
        self.nap = (self.nap * 2).min(NAP_MAX);
    }

    /// The next nap (for a waiter that sleeps on something else).
    pub(super) fn next_nap(&mut self) -> Duration {
        let n = self.nap;
        self.nap = (self.nap * 2).min(NAP_MAX);
        n
    }
}
