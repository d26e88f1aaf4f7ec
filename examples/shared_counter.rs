//! N processes increment one shared `Value` under its lock.
//!
//! Python's
//! ```python
//! def work(counter, n):
//!     for _ in range(n):
//!         with counter.get_lock():
//!             counter.value += 1
//!
//! if __name__ == "__main__":
//!     counter = multiprocessing.Value("Q", 0)
//!     ps = [multiprocessing.Process(target=work, args=(counter, 100_000)) for _ in range(4)]
//!     for p in ps: p.start()
//!     for p in ps: p.join()
//!     print("total =", counter.value)
//! ```
//! becomes the program below. Each increment is a read-modify-write under the
//! value's robust lock, so the total is exact: 4 × 100 000 = 400 000.
//!
//! Run with `cargo run --release --example shared_counter [processes] [increments]`.

use std::time::Instant;

use shmproc::{Process, Value};

fn work((counter, n): (Value<u64>, u64)) -> shmproc::Result<()> {
    for _ in 0..n {
        let mut guard = counter.lock()?;
        *guard += 1;
    }
    Ok(())
}

fn main() -> shmproc::Result<()> {
    shmproc::init();
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let processes = args.next().and_then(|a| a.ok()).unwrap_or(4);
    let increments = args.next().and_then(|a| a.ok()).unwrap_or(100_000);

    let counter = Value::new(0u64)?;
    let start = Instant::now();
    let children = (0..processes)
        .map(|_| Process::spawn(work, (counter.clone(), increments)))
        .collect::<shmproc::Result<Vec<_>>>()?;
    for p in &children {
        let code = p.join()?;
        if code != 0 {
            eprintln!("{} exited with {code}", p.name());
        }
    }
    println!(
        "{processes} processes x {increments} increments: total = {} (expected {}) in {:?}",
        counter.get(),
        processes * increments,
        start.elapsed()
    );
    Ok(())
}
