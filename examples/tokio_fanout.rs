//! A tokio program that fans work out to worker processes and awaits their
//! results in the same `tokio::select!` as a timer and a TCP listener.
//!
//! The asyncio shape of it, in Python, needs a thread per blocking call:
//! ```python
//! async def main():
//!     jobs, results = multiprocessing.Queue(16), multiprocessing.Queue(16)
//!     workers = [Process(target=worker, args=(jobs, results)) for _ in range(4)]
//!     ...
//!     result = await asyncio.to_thread(results.get)   # a thread, not cancellable
//! ```
//! Here the parent runs a current-thread tokio runtime, and one loop
//! - feeds jobs into a `Queue` with `put_async` (it waits while the queue is
//!   full, without blocking the runtime), then closes it;
//! - takes results with `get_async` as the worker processes put them;
//! - notices each worker's exit with `join_async` (tasks in a `JoinSet`);
//! - serves a `tokio::net::TcpListener` (one client, started by the program
//!   itself, is told how many results have come in so far);
//! - and ticks a `tokio::time::interval`.
//!
//! No thread per queue or per worker: a pending shmproc future registers its
//! futex word with the process's one reactor thread (started by the first
//! future that has to wait, gone when none waits), which sleeps in
//! `futex_waitv` on all of them and wakes the right task. The program samples
//! its thread count at each tick and prints the most it saw: the runtime's
//! thread plus that one reactor. The futures are cancel-safe, which
//! `select!` needs: every loop drops the `put_async`/`get_async` that did
//! not win, and a dropped get leaves its item queued, a dropped put puts
//! nothing.
//!
//! The parent checks the results by computing the same checksum itself.
//!
//! Run with `cargo run --release --example tokio_fanout`.

use std::time::Duration;

use shmproc::{Error, Process, Queue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

const WORKERS: usize = 4;
const JOBS: u64 = 100;
/// Numbers per job: job `j` covers `j * SPAN + 1 ..= (j + 1) * SPAN`.
const SPAN: u64 = 10_000;
/// If the whole run takes this long, something is broken.
const WATCHDOG: Duration = Duration::from_secs(30);

/// One job: the total number of Collatz steps of the numbers in its span.
fn collatz_steps(job: u64) -> u64 {
    (job * SPAN + 1..=(job + 1) * SPAN)
        .map(|mut n| {
            let mut steps = 0;
            while n != 1 {
                n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
                steps += 1;
            }
            steps
        })
        .sum()
}

/// A worker process: jobs until the queue is closed and drained.
fn worker((jobs, results): (Queue<u64>, Queue<(u64, u64)>)) {
    loop {
        match jobs.get() {
            Ok(job) => results.put(&(job, collatz_steps(job))).unwrap(),
            Err(Error::Closed) => break,
            Err(e) => panic!("worker: {e}"),
        }
    }
}

/// A checksum term that order cannot cancel out.
fn mix((job, steps): (u64, u64)) -> u64 {
    (job << 32 ^ steps)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .rotate_left(17)
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

/// What the loop saw, for the summary.
#[derive(Default)]
struct Report {
    checksum: u64,
    received: u64,
    exit_codes: Vec<i32>,
    served: usize,
    told: String,
    ticks: u64,
    max_threads: usize,
}

async fn run(
    jobs: &Queue<u64>,
    results: &Queue<(u64, u64)>,
    workers: &[Process],
) -> shmproc::Result<Report> {
    let mut report = Report::default();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let client = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    });
    let mut exits = JoinSet::new();
    for w in workers {
        let w = w.clone();
        exits.spawn(async move { w.join_async().await });
    }
    let mut seen = vec![false; JOBS as usize];
    let mut next_job = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let watchdog = tokio::time::sleep(WATCHDOG);
    tokio::pin!(watchdog);

    while report.received < JOBS || !exits.is_empty() || report.served == 0 {
        let job = next_job;
        tokio::select! {
            put = jobs.put_async(&job), if job < JOBS => {
                put?;
                next_job += 1;
                if next_job == JOBS {
                    // Workers drain what is queued, then get `Closed`.
                    jobs.close();
                }
            }
            got = results.get_async(), if report.received < JOBS => {
                let (job, steps) = got?;
                let first = seen.get_mut(job as usize).map(|s| !std::mem::replace(s, true));
                if first != Some(true) {
                    let e = format!("result for job {job}: not a job sent, or a repeat");
                    return Err(std::io::Error::other(e).into());
                }
                report.checksum = report.checksum.wrapping_add(mix((job, steps)));
                report.received += 1;
            }
            Some(exit) = exits.join_next() => {
                let code = exit.map_err(std::io::Error::other)??;
                report.exit_codes.push(code);
            }
            accepted = listener.accept(), if report.served == 0 => {
                let (mut stream, _) = accepted?;
                let answer = format!("{}/{JOBS} results so far", report.received);
                // Its own task: a slow client must not hold up the loop.
                tokio::spawn(async move { stream.write_all(answer.as_bytes()).await });
                report.served += 1;
            }
            _ = tick.tick() => {
                report.ticks += 1;
                report.max_threads = report.max_threads.max(threads());
            }
            () = &mut watchdog => {
                eprintln!("not done after {WATCHDOG:?}: giving up");
                return Err(Error::Timeout);
            }
        }
    }
    report.told = client.await.map_err(std::io::Error::other)??;
    Ok(report)
}

fn main() -> shmproc::Result<()> {
    shmproc::init();
    let jobs = Queue::<u64>::new(16)?;
    let results = Queue::<(u64, u64)>::new(16)?;
    // Launched before the runtime starts: no thread of ours exists yet.
    let workers = (0..WORKERS)
        .map(|_| Process::spawn(worker, (jobs.clone(), results.clone())))
        .collect::<shmproc::Result<Vec<_>>>()?;
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::from)
        .and_then(|rt| rt.block_on(run(&jobs, &results, &workers)));
    if outcome.is_err() {
        for w in &workers {
            let _ = w.kill();
        }
    }
    // Reap every worker, whatever happened (join_async already did on
    // success; join then returns the same code at once).
    for w in &workers {
        w.join()?;
    }
    let report = outcome?;

    let expected = (0..JOBS)
        .map(|job| mix((job, collatz_steps(job))))
        .fold(0u64, u64::wrapping_add);
    let matched = report.checksum == expected;
    println!(
        "results: {}/{JOBS}, checksum {:#018x}: {}",
        report.received,
        report.checksum,
        if matched { "match" } else { "MISMATCH" }
    );
    let clean = report.exit_codes.iter().filter(|c| **c == 0).count();
    println!("workers: {clean}/{WORKERS} exited with code 0");
    println!(
        "listener served {} client (told \"{}\")",
        report.served, report.told
    );
    println!("timer ticked {} times", report.ticks);
    println!(
        "threads in this process: at most {} (tokio's one and shmproc's reactor)",
        report.max_threads
    );
    if !matched || clean != WORKERS {
        std::process::exit(1);
    }
    Ok(())
}
