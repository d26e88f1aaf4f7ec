//! Four child processes, each printing its own number.
//!
//! Python's
//! ```python
//! def print_number(number):
//!     print(f"Process {number} prints {number}.")
//!
//! if __name__ == "__main__":
//!     processes = [multiprocessing.Process(target=print_number, args=(i,)) for i in range(4)]
//!     for p in processes: p.start()
//!     for p in processes: p.join()
//!     print("Main process completed.")
//! ```
//! becomes the program below. The children run at the same time, so their
//! lines may come in any order.
//!
//! Run with `cargo run --example four_processes`.

use shmproc::Process;

fn print_number(number: u32) {
    println!("Process {number} prints {number}.");
}

fn main() -> shmproc::Result<()> {
    shmproc::init();
    let processes = (0..4)
        .map(|i| Process::spawn(print_number, i))
        .collect::<shmproc::Result<Vec<_>>>()?;
    for p in &processes {
        p.join()?;
    }
    println!("Main process completed.");
    Ok(())
}
