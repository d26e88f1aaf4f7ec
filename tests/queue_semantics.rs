//! What peers' own test suites expect of a queue (crossbeam's
//! `linearizable`, CPython 3.13's `shutdown`), with threads and with real
//! processes: `try_get` right after one's own `put` never says `Empty`,
//! `len()` is exact whenever nobody puts or gets, and `shutdown(immediate)`
//! closes or discards.
//!
//! Every test that spawns calls `shmproc::init()` first; `Reaper` kills and
//! reaps children on every exit path; every wait is bounded.

mod common;
use common::{join, unique_name, Reaper, Watchdog};

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmproc::{Barrier, Error, JoinableQueue, Pod, Process, Queue};

type Q = Queue<u64, Pod>;

// ---- try_get after one's own put (crossbeam's `linearizable`) -------------

/// Each party puts, then at once try_gets: the queue can never be empty at
/// that moment (at most `parties` items are ever in it, its capacity).
fn put_then_try_get(q: &Q, rounds: u64) -> Result<(), String> {
    for i in 0..rounds {
        q.put(&i).map_err(|e| format!("put {i}: {e}"))?;
        match q.try_get() {
            Ok(_) => {}
            Err(e) => return Err(format!("round {i}: try_get after our put said {e}")),
        }
    }
    Ok(())
}

#[test]
fn linearizable_threads() {
    let _w = Watchdog::new("linearizable_threads");
    const THREADS: usize = 4;
    let q: Q = Queue::new(THREADS).unwrap();
    let ts: Vec<_> = (0..THREADS)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || put_then_try_get(&q, 25_000))
        })
        .collect();
    for t in ts {
        t.join().unwrap().unwrap();
    }
    assert!(q.is_empty());
}

fn linearizable_child((q, rounds): (Q, u64)) -> Result<(), String> {
    put_then_try_get(&q, rounds)
}

#[test]
fn linearizable_processes() {
    shmproc::init();
    let _w = Watchdog::new("linearizable_processes");
    let mut r = Reaper::new();
    let q: Q = Queue::new(3).unwrap();
    let kids: Vec<Process> = (0..2)
        .map(|_| r.watch(Process::spawn(linearizable_child, (q.clone(), 20_000)).unwrap()))
        .collect();
    put_then_try_get(&q, 20_000).unwrap();
    for k in &kids {
        assert_eq!(join(k), 0, "a child's try_get said Empty after its own put");
    }
    assert!(q.is_empty());
}

// ---- a producer paused between claiming and publishing ---------------------
// Written with the layout of docs/protocols/queue.md, as a peer maps it: the
// file holds a 256-byte header, then the payload; the `items` wait word's
// waiter count is at payload offset 260; slot i's state word is at
// 2048 + i * 32 for a Pod queue of 8-byte items (16 data bytes + 16), its
// length at +8, its data at +16.

const PAYLOAD: usize = 256;
const BUSY: u64 = 1 << 60;
const FULL: u64 = 1 << 61;

struct Mapped(memmap2::MmapRaw);

impl Mapped {
    fn of(name: &str) -> Mapped {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/dev/shm/shmproc.{name}"))
            .unwrap();
        Mapped(memmap2::MmapRaw::map_raw(&f).unwrap())
    }
    fn u64_at(&self, off: usize) -> &AtomicU64 {
        assert!(PAYLOAD + off + 8 <= self.0.len() && off % 8 == 0);
        // SAFETY: in bounds and 8-aligned (asserted; the mapping is
        // page-aligned); the ring's words are only accessed atomically.
        unsafe { &*(self.0.as_mut_ptr().add(PAYLOAD + off) as *const AtomicU64) }
    }
    fn u32_at(&self, off: usize) -> &AtomicU32 {
        assert!(PAYLOAD + off + 4 <= self.0.len() && off % 4 == 0);
        // SAFETY: as in `u64_at`.
        unsafe { &*(self.0.as_mut_ptr().add(PAYLOAD + off) as *const AtomicU32) }
    }
    fn state(&self, slot: usize) -> &AtomicU64 {
        self.u64_at(2048 + slot * 32)
    }
    fn getters_asleep(&self) -> u32 {
        self.u32_at(260).load(Ordering::SeqCst)
    }
}

fn gettid() -> u64 {
    // SAFETY: gettid takes no arguments and cannot fail.
    u64::from(unsafe { libc::gettid() } as u32)
}

#[test]
fn try_get_waits_for_a_write_in_flight() {
    let _w = Watchdog::new("try_get_waits_for_a_write_in_flight");
    let name = unique_name("q-inflight");
    let q: Q = Queue::builder().name(&name).maxsize(4).create().unwrap();
    let m = Arc::new(Mapped::of(&name));
    // A live producer (a thread of ours, so its liveness check says alive)
    // claims position 0 and pauses before writing it.
    let (tx, rx) = std::sync::mpsc::channel();
    let m2 = m.clone();
    let writer = std::thread::spawn(move || {
        m2.state(0)
            .compare_exchange(
                0,
                BUSY | (gettid() << 32),
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .unwrap();
        m2.u64_at(0).store(1, Ordering::SeqCst); // the tail hint, as a put moves it
        tx.send(()).unwrap();
        // Finish the put once the getter waits for it: its registration as
        // a sleeper on `items` is the handshake.
        while m2.getters_asleep() == 0 {
            std::thread::yield_now();
        }
        m2.u64_at(2048 + 16).store(5, Ordering::SeqCst);
        m2.u32_at(2048 + 8).store(8, Ordering::SeqCst);
        m2.state(0).store(FULL, Ordering::Release);
    });
    rx.recv().unwrap();
    // A later put completes while the first is still in flight...
    q.put(&7).unwrap();
    assert_eq!(q.len(), 2, "both claimed positions count");
    // ...and a try_get must not say Empty: it waits for the write in flight.
    assert_eq!(q.try_get().unwrap(), 5);
    assert_eq!(q.try_get().unwrap(), 7);
    writer.join().unwrap();

    // A producer that stays paused (alive, never finishing) is waited for
    // only until a liveness check finds it alive: then Empty, not a hang.
    let st = m.state(2).load(Ordering::SeqCst);
    assert_eq!(st, 2, "slot 2 is free for position 2");
    m.state(2)
        .compare_exchange(
            2,
            2 | BUSY | (gettid() << 32),
            Ordering::SeqCst,
            Ordering::SeqCst,
        )
        .unwrap();
    m.u64_at(0).store(3, Ordering::SeqCst);
    let start = Instant::now();
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    assert!(matches!(
        q.get_timeout(Duration::from_millis(1)),
        Err(Error::Timeout)
    ));
    assert!(start.elapsed() < common::WATCHDOG);
}

// ---- len() exact when quiet ------------------------------------------------

/// Rounds of: every party puts one item at the same moment; once all have
/// returned, `len()` must be exactly the number of parties; then every
/// party gets one; once all have returned, `len()` must be 0.
#[test]
fn len_exact_when_quiet_threads() {
    let _w = Watchdog::new("len_exact_when_quiet_threads");
    const PARTIES: usize = 4;
    const ROUNDS: u64 = 50_000;
    let q: Q = Queue::new(8).unwrap();
    let b = Arc::new(std::sync::Barrier::new(PARTIES + 1));
    let ts: Vec<_> = (0..PARTIES)
        .map(|_| {
            let (q, b) = (q.clone(), b.clone());
            std::thread::spawn(move || {
                for i in 0..ROUNDS {
                    b.wait();
                    q.put(&i).unwrap();
                    b.wait();
                    b.wait();
                    q.get().unwrap();
                    b.wait();
                }
            })
        })
        .collect();
    for round in 0..ROUNDS {
        b.wait();
        b.wait();
        assert_eq!(q.len(), PARTIES, "round {round}: after the puts");
        assert!(!q.is_empty());
        b.wait();
        b.wait();
        assert_eq!(q.len(), 0, "round {round}: after the gets");
        assert!(q.is_empty());
    }
    for t in ts {
        t.join().unwrap();
    }
}

fn len_child((q, b, rounds): (Q, Barrier, u64)) -> Result<(), String> {
    for i in 0..rounds {
        b.wait().map_err(|e| e.to_string())?;
        q.put(&i).map_err(|e| e.to_string())?;
        b.wait().map_err(|e| e.to_string())?;
        b.wait().map_err(|e| e.to_string())?;
        q.get().map_err(|e| e.to_string())?;
        b.wait().map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[test]
fn len_exact_when_quiet_processes() {
    shmproc::init();
    let _w = Watchdog::new("len_exact_when_quiet_processes");
    const ROUNDS: u64 = 2_000;
    let mut r = Reaper::new();
    let q: Q = Queue::new(8).unwrap();
    let b = Barrier::new(3).unwrap();
    let kids: Vec<Process> = (0..2)
        .map(|_| r.watch(Process::spawn(len_child, (q.clone(), b.clone(), ROUNDS)).unwrap()))
        .collect();
    for round in 0..ROUNDS {
        b.wait().unwrap();
        b.wait().unwrap();
        assert_eq!(q.len(), 2, "round {round}: after the puts");
        b.wait().unwrap();
        b.wait().unwrap();
        assert_eq!(q.len(), 0, "round {round}: after the gets");
    }
    for k in &kids {
        assert_eq!(join(k), 0);
    }
}

// ---- shutdown (Python 3.13) ------------------------------------------------

#[test]
fn shutdown_not_immediate_is_close() {
    let q: Q = Queue::new(4).unwrap();
    q.put(&1).unwrap();
    q.shutdown(false);
    assert!(matches!(q.put(&2), Err(Error::Closed)));
    assert_eq!(q.get().unwrap(), 1, "what was queued drains");
    assert!(matches!(q.get(), Err(Error::Closed)));
}

#[test]
fn shutdown_immediate_discards() {
    let q: Q = Queue::new(4).unwrap();
    q.put_many(&[1, 2, 3]).unwrap();
    q.shutdown(true);
    assert!(matches!(q.try_get(), Err(Error::Closed)));
    assert!(matches!(q.get(), Err(Error::Closed)));
    let mut out = Vec::new();
    assert!(matches!(q.get_many(&mut out, 4), Err(Error::Closed)));
    assert!(out.is_empty());
    assert!(matches!(q.put(&4), Err(Error::Closed)));
    assert_eq!(q.len(), 0);
    assert!(q.is_empty() && q.is_closed());
    q.shutdown(false);
    assert!(
        matches!(q.get(), Err(Error::Closed)),
        "a later close does not undo it"
    );
}

fn get_until_closed(q: Q) -> Result<(), String> {
    match q.get() {
        Err(Error::Closed) => Ok(()),
        other => Err(format!("expected Closed, got {other:?}")),
    }
}

#[test]
fn shutdown_immediate_wakes_a_getter_in_another_process() {
    shmproc::init();
    let mut r = Reaper::new();
    let name = unique_name("q-shut");
    let q: Q = Queue::builder().name(&name).maxsize(4).create().unwrap();
    let child = r.watch(Process::spawn(get_until_closed, q.clone()).unwrap());
    // Once the child sleeps on the empty queue (the queue's own count of
    // sleeping getters says so), shut down: it must wake with Closed.
    let asleep = || {
        shmproc::inspect::details(&name)
            .unwrap()
            .iter()
            .any(|(k, v)| *k == "getters asleep" && v != "0")
    };
    let deadline = Instant::now() + common::WATCHDOG;
    while !asleep() {
        assert!(Instant::now() < deadline, "watchdog: the child never slept");
        std::thread::sleep(Duration::from_millis(1));
    }
    q.shutdown(true);
    assert_eq!(join(&child), 0);
}

fn join_child(q: JoinableQueue<u64, Pod>) -> Result<(), String> {
    q.join().map_err(|e| e.to_string())
}

#[test]
fn shutdown_immediate_releases_joiners() {
    shmproc::init();
    let mut r = Reaper::new();
    let q: JoinableQueue<u64, Pod> = JoinableQueue::new(4).unwrap();
    q.put(&1).unwrap();
    q.put(&2).unwrap();
    let child = r.watch(Process::spawn(join_child, q.clone()).unwrap());
    assert_eq!(q.get().unwrap(), 1);
    q.task_done().unwrap();
    q.shutdown(true);
    assert_eq!(join(&child), 0, "join returned after the shutdown");
    q.join().unwrap();
    assert!(matches!(q.get(), Err(Error::Closed)));
}
