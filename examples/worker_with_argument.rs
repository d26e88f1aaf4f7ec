//! One child process that receives an argument.
//!
//! Python's
//! ```python
//! def worker(num):
//!     print(f"Worker function executing with argument: {num}")
//!
//! if __name__ == "__main__":
//!     process = multiprocessing.Process(target=worker, args=(10,))
//!     process.start()
//!     process.join()
//!     print("Main process exiting")
//! ```
//! becomes the program below. The argument travels to the child serialized
//! (any `serde` type works), as Python pickles `args`.
//!
//! Run with `cargo run --example worker_with_argument`.

use shmproc::Process;

fn worker(num: u32) {
    println!("Worker function executing with argument: {num}");
}

fn main() -> shmproc::Result<()> {
    shmproc::init();
    let process = Process::spawn(worker, 10)?;
    process.join()?;
    println!("Main process exiting");
    Ok(())
}
