//! The Pool over MPI (cargo feature `mpi`): under `mpirun`, rank 0 holds
//! the `Pool` and the other ranks are its workers
//! (`docs/protocols/pool-mpi.md`).
//!
//! Everything above the workers is the local pool's: a call's arguments
//! are cut into the same pieces (`encode.rs`), its results land in the
//! same jobs and are decoded by the same `AsyncResult`, `Imap` and
//! streaming `map`; a worker rank runs the same task runners with the same
//! `Emitter` (`worker.rs`). What differs is how pieces travel and who
//! drives them:
//!
//! - `world.rs`: `init()` (every rank joins the job; ranks 1.. serve and
//!   never return), rank 0's shared state, its progress thread, and the
//!   shutdown at exit;
//! - `dispatch.rs`: rank 0's dispatcher (pieces in flight per rank, results
//!   routed to jobs, pieces sent as ranks have room);
//! - `pool.rs`: `MpiPool`, the [`Backend`](super::backend::Backend) of one
//!   pool, and `build`;
//! - `serve.rs`: a worker rank's loop;
//! - `proto.rs`: tags, message kinds, the identity handshake;
//! - `comm.rs`: the pool's communicator, owned non-blocking sends,
//!   `MPI_Abort`, the poll-then-nap wait.

mod comm;
mod dispatch;
mod pool;
mod proto;
mod serve;
mod world;

pub(crate) use pool::{build, InitCall, Options};
pub(crate) use world::init;
