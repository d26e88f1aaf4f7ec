//! Processes logging to one file through the `log` facade.
//!
//! Python's
//! ```python
//! logging.basicConfig(filename='multipro.txt', level=logging.INFO,
//!                     format='%(levelname)s-%(message)s')
//!
//! def test():
//!     logging.info('this is my multiprocessing program')
//!
//! def print_number(number):
//!     logging.info(f'process{number}:{number}')
//!
//! def worker_function(input):
//!     return input * 2
//!
//! if __name__ == '__main__':
//!     logging.info('this is my main programme')
//!     m = multiprocessing.Process(target=test); m.start(); m.join()
//!     processes = [multiprocessing.Process(target=print_number, args=(i,)) for i in range(1, 5)]
//!     for p in processes: p.start()
//!     for p in processes: p.join()
//!     pool = multiprocessing.Pool(processes=4)
//!     for result in pool.map(worker_function, [1, 2, 3, 45, 9]):
//!         logging.info(result)
//!     pool.close(); pool.join()
//! ```
//! becomes the program below. A launched child is a fresh run of this
//! binary, so each entry installs the logger itself (Python re-runs
//! `basicConfig` when a spawned child imports the module). Every record is one
//! `write` to a file opened with `O_APPEND`, so lines from different processes
//! never interleave. At the end the parent prints the file, sorted (the
//! children's lines come in any order).
//!
//! shmproc itself logs through the same facade (segments created, processes
//! spawned and exited, at debug level), so those records land in the file too
//! when the level allows them; here the level is `Info`.
//!
//! Run with `cargo run --example logging_to_file`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use shmproc::{Pool, Process};

/// `LEVEL-message` lines appended to one file (Python's `FileHandler`).
struct FileLog(File);

impl log::Log for FileLog {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = format!("{}-{}\n", record.level(), record.args());
            // One write per record: O_APPEND makes it atomic with respect to
            // the other processes' appends.
            let _ = (&self.0).write_all(line.as_bytes());
        }
    }
    fn flush(&self) {}
}

/// Python's `logging.basicConfig(filename=..., level=INFO)`.
fn basic_config(path: &Path) {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("opening the log file");
    if log::set_logger(Box::leak(Box::new(FileLog(file)))).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

fn test(path: PathBuf) {
    basic_config(&path);
    log::info!("this is my multiprocessing program");
}

fn print_number((path, number): (PathBuf, u32)) {
    basic_config(&path);
    log::info!("process{number}:{number}");
}

fn worker_function(input: u64) -> u64 {
    input * 2
}

fn main() -> shmproc::Result<()> {
    shmproc::init();
    let path = std::env::temp_dir().join(format!("shmproc-multipro-{}.txt", std::process::id()));
    basic_config(&path);

    log::info!("this is my main programme");
    let m = Process::spawn(test, path.clone())?;
    m.join()?;

    let processes = (1..=4)
        .map(|i| Process::spawn(print_number, (path.clone(), i)))
        .collect::<shmproc::Result<Vec<_>>>()?;
    for p in &processes {
        p.join()?;
    }

    let pool = Pool::builder().processes(4).build()?;
    for result in pool.map(worker_function, vec![1u64, 2, 3, 45, 9])? {
        log::info!("{result}");
    }
    pool.close();
    pool.join()?;

    let text = std::fs::read_to_string(&path)?;
    std::fs::remove_file(&path)?;
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    println!("{} ({} lines):", path.display(), lines.len());
    for l in lines {
        println!("{l}");
    }
    Ok(())
}
