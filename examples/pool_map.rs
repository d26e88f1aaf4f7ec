//! A pool of 4 worker processes maps a function over a list.
//!
//! Python's
//! ```python
//! from multiprocessing import Pool
//!
//! def square(n):
//!     return n * n
//!
//! if __name__ == "__main__":
//!     with Pool(4) as pool:
//!         numbers = [1, 2, 3, 4]
//!         results = pool.map(square, numbers)
//!     print(results)
//! ```
//! becomes the program below (plus doubles, and a look at which worker did
//! what). Dropping the pool at the end of `main` terminates it, as Python's
//! `with` block does.
//!
//! Run with `cargo run --example pool_map`.

use shmproc::Pool;

fn square(n: u64) -> u64 {
    n * n
}

fn double(n: u64) -> u64 {
    2 * n
}

fn who(n: u64) -> (u64, u32) {
    (n, std::process::id())
}

fn main() -> shmproc::Result<()> {
    shmproc::init();
    let pool = Pool::new(4)?;
    let numbers = vec![1u64, 2, 3, 4];
    let squares = pool.map(square, numbers.clone())?;
    let doubles = pool.map(double, numbers.clone())?;
    println!("squares: {squares:?}");
    println!("doubles: {doubles:?}");
    for (n, pid) in pool.map(who, numbers)? {
        println!("  {n} was handled by worker pid {pid}");
    }
    Ok(())
}
