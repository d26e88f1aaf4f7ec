//! A pool of four worker processes doubling a list of numbers.
//!
//! Python's
//! ```python
//! def worker(num):
//!     return num * 2
//!
//! if __name__ == "__main__":
//!     pool = multiprocessing.Pool(processes=4)
//!     results = pool.map(worker, [1, 2, 3, 4, 5])
//!     pool.close()
//!     pool.join()
//!     print("Results:", results)
//! ```
//! becomes the program below. `map` keeps the order of its input, whichever
//! worker finished first.
//!
//! Run with `cargo run --example pool_double`.

use shmproc::Pool;

fn worker(num: u64) -> u64 {
    num * 2
}

fn main() -> shmproc::Result<()> {
    shmproc::init();
    let pool = Pool::builder().processes(4).build()?;
    let results = pool.map(worker, vec![1u64, 2, 3, 4, 5])?;
    pool.close();
    pool.join()?;
    println!("Results: {results:?}");
    Ok(())
}
