//! One child process prints a line; the parent waits for it.
//!
//! Python's
//! ```python
//! def worker():
//!     print("Worker process running")
//!
//! if __name__ == "__main__":
//!     p = multiprocessing.Process(target=worker)
//!     p.start()
//!     p.join()
//!     print("Main process exiting")
//! ```
//! becomes the program below. `shmproc::init()` plays the part of
//! `if __name__ == "__main__"`: in the child it runs `worker` and exits.
//!
//! Run with `cargo run --example hello_process`.

use shmproc::Process;

fn worker(_: ()) {
    let me = shmproc::current_process();
    println!("Worker process running ({}, pid {})", me.name(), me.pid());
}

fn main() -> shmproc::Result<()> {
    shmproc::init();
    let p = Process::spawn(worker, ())?;
    p.join()?;
    println!("Main process exiting (child exit code {:?})", p.exitcode());
    Ok(())
}
