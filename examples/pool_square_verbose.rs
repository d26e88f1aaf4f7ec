//! Pool workers that print as they work.
//!
//! Python's
//! ```python
//! def square(x):
//!     print(f"start process:{x}")
//!     square = x * x
//!     print(f"square {x}:{square}")
//!     print(f"end process:{x}")
//!
//! if __name__ == "__main__":
//!     pool = Pool()
//!     pool.map(square, range(0, 5))
//!     pool.close()
//! ```
//! becomes the program below: a pool of [`shmproc::cpu_count`] workers (as
//! Python's `Pool()`), whose prints reach the terminal directly (workers
//! inherit stdout). Lines of different workers interleave in any order; each
//! line is written whole.
//!
//! Run with `cargo run --example pool_square_verbose`.

use shmproc::Pool;

fn square(x: u64) {
    println!("start process:{x}");
    let square = x * x;
    println!("square {x}:{square}");
    println!("end process:{x}");
}

fn main() -> shmproc::Result<()> {
    shmproc::init();
    let pool = Pool::new(shmproc::cpu_count())?;
    pool.map(square, 0..5u64)?;
    pool.close();
    pool.join()?;
    Ok(())
}
