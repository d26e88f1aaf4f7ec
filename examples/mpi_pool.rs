//! A Pool whose workers are the ranks of an MPI job (cargo feature `mpi`):
//!
//! ```sh
//! cargo build --release --features mpi --example mpi_pool
//! mpirun -n 3 target/release/examples/mpi_pool     # rank 0 + 2 worker ranks
//! ```

use shmproc::Pool;

fn square(x: u64) -> u64 {
    x * x
}

/// Where a task ran: the worker rank's process id and host.
fn whereami(_: u32) -> (u32, String) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    (std::process::id(), host.trim().to_owned())
}

fn main() -> shmproc::Result<()> {
    shmproc::init(); // ranks 1.. serve tasks here and never return
    let pool = Pool::builder().mpi().build()?;
    println!("workers: {} ranks", pool.processes());
    let squares: Vec<u64> = pool.map(square, 0..1_000_000u64)?;
    println!("sum of squares below 1e6: {}", squares.iter().sum::<u64>());
    let mut seen: Vec<(u32, String)> = pool
        .map(whereami, 0..64u32)?
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    seen.sort();
    println!("tasks ran on {} ranks", seen.len());
    Ok(())
}
