//! Two processes started together, each printing its name and process id.
//!
//! Python's
//! ```python
//! def task(name):
//!     print(f"Task {name} running in process {os.getpid()}", flush=True)
//!
//! if __name__ == "__main__":
//!     process1 = Process(target=task, args=("A",))
//!     process2 = Process(target=task, args=("B",))
//!     process1.start()
//!     process2.start()
//!     print("Processes started", flush=True)
//!     process1.join()
//!     process2.join()
//! ```
//! becomes the program below. The three lines may come in any order: the
//! children run at the same time as the parent.
//!
//! Run with `cargo run --example two_tasks`.

use shmproc::Process;

fn task(name: String) {
    println!("Task {name} running in process {}", std::process::id());
}

fn main() -> shmproc::Result<()> {
    shmproc::init();
    let process1 = Process::spawn(task, "A".to_string())?;
    let process2 = Process::spawn(task, "B".to_string())?;
    println!("Processes started");
    process1.join()?;
    process2.join()?;
    Ok(())
}
