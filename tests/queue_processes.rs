//! Queues between real processes: checksummed SPSC and 4x4 MPMC, and the
//! crash cases (a producer killed mid-put, a consumer killed mid-get).
//!
//! Every test that spawns calls `shmproc::init()` first; `Reaper` kills and
//! reaps children on every exit path; every wait is bounded.

mod common;
use common::{counter, wait_for_counter, wait_until, Reaper, WATCHDOG};

use std::time::{Duration, Instant};

use common::unique_name;
use shmproc::{Error, Pod, Process, Queue};

fn join_ok(p: &Process) {
    assert_eq!(
        p.join_timeout(WATCHDOG).expect("join"),
        0,
        "child {} failed",
        p.name()
    );
}

type Q = Queue<[u64; 2], Pod>;

/// Item `i` of producer `p`: `[p, i]`.
fn produce((q, p, n): (Q, u64, u64)) {
    for i in 0..n {
        q.put(&[p, i]).unwrap();
    }
}

/// Consumes until `Closed`, checking per-producer order; reports `[count, sum]`.
fn consume((q, out): (Q, Q)) {
    let mut next = [0u64; 16];
    let (mut count, mut sum) = (0u64, 0u64);
    loop {
        match q.get_timeout(WATCHDOG) {
            Ok([p, i]) => {
                assert!(
                    next[p as usize] <= i,
                    "producer {p}: {i} after {}",
                    next[p as usize]
                );
                next[p as usize] = i + 1;
                count += 1;
                sum = sum.wrapping_add(p * 1_000_003 + i);
            }
            Err(Error::Closed) => break,
            Err(e) => panic!("consumer: {e}"),
        }
    }
    out.put(&[count, sum]).unwrap();
}

fn expected_sum(producers: u64, n: u64) -> u64 {
    (0..producers)
        .flat_map(|p| (0..n).map(move |i| p * 1_000_003 + i))
        .fold(0u64, u64::wrapping_add)
}

#[test]
fn spsc_checksummed() {
    shmproc::init();
    let mut r = Reaper::new();
    const N: u64 = 200_000;
    let q: Q = Queue::new(64).unwrap();
    let p = r.watch(Process::spawn(produce, (q.clone(), 0u64, N)).unwrap());
    let (mut sum, mut next) = (0u64, 0u64);
    for _ in 0..N {
        let [_, i] = q.get_timeout(WATCHDOG).unwrap();
        assert_eq!(i, next);
        next += 1;
        sum = sum.wrapping_add(i);
    }
    assert_eq!(sum, expected_sum(1, N));
    join_ok(&p);
}

#[test]
fn mpmc_4x4_checksummed() {
    shmproc::init();
    let mut r = Reaper::new();
    const N: u64 = 50_000;
    let q: Q = Queue::new(32).unwrap();
    let results: Q = Queue::new(8).unwrap();
    let consumers: Vec<_> = (0..4)
        .map(|_| r.watch(Process::spawn(consume, (q.clone(), results.clone())).unwrap()))
        .collect();
    let producers: Vec<_> = (0..4u64)
        .map(|p| r.watch(Process::spawn(produce, (q.clone(), p, N)).unwrap()))
        .collect();
    for p in &producers {
        join_ok(p);
    }
    q.close();
    let (mut count, mut sum) = (0, 0u64);
    for _ in 0..4 {
        let [c, s] = results.get_timeout(WATCHDOG).unwrap();
        count += c;
        sum = sum.wrapping_add(s);
    }
    for c in &consumers {
        join_ok(c);
    }
    assert_eq!(count, 4 * N);
    assert_eq!(sum, expected_sum(4, N));
}

/// Puts forever until killed.
fn put_forever((q, p): (Q, u64)) {
    let mut i = 0;
    loop {
        q.put(&[p, i]).unwrap();
        i += 1;
    }
}

#[test]
fn producer_killed_mid_put_stress() {
    shmproc::init();
    let mut r = Reaper::new();
    let q: Q = Queue::new(4).unwrap();
    let victim = r.watch(Process::spawn(put_forever, (q.clone(), 1u64)).unwrap());
    let steady = r.watch(Process::spawn(produce, (q.clone(), 0u64, 100_000)).unwrap());
    // Let both run into a full queue, then kill one mid-put.
    let mut next = [0u64; 2];
    let mut got = 0;
    while got < 20_000 {
        let [p, i] = q.get_timeout(WATCHDOG).unwrap();
        assert!(next[p as usize] <= i);
        next[p as usize] = i + 1;
        got += 1;
    }
    victim.kill().unwrap();
    assert_eq!(victim.join_timeout(WATCHDOG).unwrap(), -9);
    // Everything the steady producer puts still arrives, whole and in order.
    let deadline = Instant::now() + WATCHDOG;
    while next[0] < 100_000 {
        assert!(Instant::now() < deadline, "watchdog");
        let [p, i] = q.get_timeout(WATCHDOG).unwrap();
        assert!(p < 2, "garbage item {p}");
        assert!(next[p as usize] <= i);
        if p == 0 {
            assert_eq!(i, next[0], "steady producer lost an item");
        }
        next[p as usize] = i + 1;
    }
    join_ok(&steady);
}

// ---- deterministic crash points, written with the layout of
// docs/protocols/queue.md, as a hostile or crashing peer sees it: the file
// holds a 256-byte segment header, then the payload; the ring's tail hint
// is at payload offset 0, its head hint at 128, and slot i's state word at
// 2048 + i * 32 for a Pod queue of 16-byte items (16 data bytes + 16). ----

const BUSY: u64 = 1 << 60;
const FULL: u64 = 1 << 61;
const PAYLOAD: usize = 256;

/// The queue's file, mapped as a peer process maps it.
fn map_queue(name: &str) -> memmap2::MmapRaw {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/shmproc.{name}"))
        .unwrap();
    memmap2::MmapRaw::map_raw(&f).unwrap()
}

/// The 8-byte word at payload offset `off` of a mapped queue.
fn word(map: &memmap2::MmapRaw, off: usize) -> &std::sync::atomic::AtomicU64 {
    assert!(PAYLOAD + off + 8 <= map.len());
    // SAFETY: in bounds (asserted), 8-aligned (page-aligned mapping, offsets
    // multiples of 8), and every word of the ring is accessed atomically.
    unsafe { &*(map.as_mut_ptr().add(PAYLOAD + off) as *const std::sync::atomic::AtomicU64) }
}

fn state_word(map: &memmap2::MmapRaw, slot: usize) -> &std::sync::atomic::AtomicU64 {
    word(map, 2048 + slot * 32)
}

/// Claims position 0 for writing (as `put` does) and dies before publishing.
fn claim_put_and_die(name: String) {
    let map = map_queue(&name);
    let tid = u64::from(gettid());
    state_word(&map, 0)
        .compare_exchange(
            0,
            BUSY | (tid << 32),
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
        )
        .unwrap();
    word(&map, 0).store(1, std::sync::atomic::Ordering::SeqCst);
    std::process::abort();
}

/// Claims position 0 for reading (as `get` does) and dies before freeing it.
fn claim_get_and_die(name: String) {
    let map = map_queue(&name);
    let tid = u64::from(gettid());
    state_word(&map, 0)
        .compare_exchange(
            FULL,
            FULL | BUSY | (tid << 32),
            std::sync::atomic::Ordering::SeqCst,
            std::sync::atomic::Ordering::SeqCst,
        )
        .unwrap();
    word(&map, 128).store(1, std::sync::atomic::Ordering::SeqCst);
    std::process::abort();
}

fn gettid() -> u32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::gettid() as u32 }
}

#[test]
fn producer_killed_between_claim_and_publish() {
    shmproc::init();
    let mut r = Reaper::new();
    let name = unique_name("q-dead-writer");
    let q: Q = Queue::builder().name(&name).maxsize(4).create().unwrap();
    let p = r.watch(Process::spawn(claim_put_and_die, name.clone()).unwrap());
    assert_ne!(p.join_timeout(WATCHDOG).unwrap(), 0);
    q.put(&[7, 7]).unwrap();
    // The dead writer's slot is skipped; the next message arrives.
    assert_eq!(q.get_timeout(WATCHDOG).unwrap(), [7, 7]);
    assert_eq!(counter(&name, "reclaimed from dead claimers"), 1);
    assert!(q.is_empty());
    // The ring goes on normally afterwards, many laps.
    for i in 0..100 {
        q.put(&[0, i]).unwrap();
        assert_eq!(q.get().unwrap(), [0, i]);
    }
}

#[test]
fn consumer_killed_mid_get_loses_only_its_message() {
    shmproc::init();
    let mut r = Reaper::new();
    let name = unique_name("q-dead-reader");
    let q: Q = Queue::builder().name(&name).maxsize(1).create().unwrap();
    q.put(&[1, 1]).unwrap();
    let p = r.watch(Process::spawn(claim_get_and_die, name.clone()).unwrap());
    assert_ne!(p.join_timeout(WATCHDOG).unwrap(), 0);
    // The only slot is held by a dead reader: a put reclaims it.
    q.put_timeout(&[2, 2], WATCHDOG).unwrap();
    assert_eq!(q.get_timeout(WATCHDOG).unwrap(), [2, 2]);
    assert!(matches!(q.try_get(), Err(Error::Empty)));
}

/// A queue of byte vectors with a small (64 KiB) stream area, so large
/// messages stay mid-stream while the test acts.
fn small_stream_queue() -> Queue<Vec<u8>> {
    Queue::builder()
        .maxsize(4)
        .bulk_size(64 * 1024)
        .create()
        .unwrap()
}

/// Streams a 64 MiB message nobody reads, so it dies mid-stream.
fn stream_big(q: Queue<Vec<u8>>) {
    q.put(&vec![9u8; 64 << 20]).unwrap();
}

#[test]
fn producer_killed_mid_large_message() {
    shmproc::init();
    let mut r = Reaper::new();
    let q = small_stream_queue();
    let p = r.watch(Process::spawn(stream_big, q.clone()).unwrap());
    // A writer puts the descriptor first, then streams the bytes: once the
    // descriptor is in, the child is mid-message (64 MiB cannot pass a
    // 64 KiB area nobody reads), with 0 to 64 KiB of it written.
    wait_until("the child put its descriptor", || !q.is_empty());
    p.kill().unwrap();
    p.join_timeout(WATCHDOG).unwrap();
    // A later large message from a live producer arrives whole; the dead
    // one's partial message is never delivered.
    let msg: Vec<u8> = (0..300_000).map(|i| (i % 253) as u8).collect();
    let q2 = q.clone();
    let m2 = msg.clone();
    let t = std::thread::spawn(move || q2.put(&m2));
    assert!(q.get_timeout(WATCHDOG).unwrap() == msg);
    t.join().unwrap().unwrap();
    assert!(matches!(q.try_get(), Err(Error::Empty)));
}

/// Puts an 8 MiB message, then a 200 KB one.
fn put_big_then_small(q: Queue<Vec<u8>>) {
    q.put(&vec![1u8; 8 << 20]).unwrap();
    q.put(&vec![2u8; 200_000]).unwrap();
}

/// Takes one message (the parent kills us while we read it).
fn take_one(q: Queue<Vec<u8>>) {
    let _ = q.get();
    std::thread::sleep(Duration::from_secs(600));
}

fn signal(p: &Process, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.pid() as i32), sig).unwrap();
}

#[test]
fn consumer_killed_mid_large_message() {
    use nix::sys::signal::Signal;
    shmproc::init();
    let mut r = Reaper::new();
    let q = small_stream_queue();
    let writer = r.watch(Process::spawn(put_big_then_small, q.clone()).unwrap());
    wait_until("the writer put its descriptor", || !q.is_empty());
    // Freeze the writer mid-message, let a reader start on it, kill the reader.
    signal(&writer, Signal::SIGSTOP);
    let reader = r.watch(Process::spawn(take_one, q.clone()).unwrap());
    // A get moves the head when it claims the descriptor, before it reads
    // the bytes: the reader holds the message from then on.
    wait_until("the reader claimed the descriptor", || q.is_empty());
    reader.kill().unwrap();
    reader.join_timeout(WATCHDOG).unwrap();
    signal(&writer, Signal::SIGCONT);
    // The dead reader's message is lost; the next one arrives whole.
    let got = q.get_timeout(WATCHDOG).unwrap();
    assert!(got == vec![2u8; 200_000], "got {} bytes", got.len());
    join_ok(&writer);
    assert!(matches!(q.try_get(), Err(Error::Empty)));
}

// ---- the crossbeam vocabulary with real processes ----

fn put_one((q, v): (Q, u64)) {
    q.put(&[v, v]).unwrap();
}

#[test]
fn smoke_process() {
    shmproc::init();
    let mut r = Reaper::new();
    let q: Q = Queue::new(1).unwrap();
    let p = r.watch(Process::spawn(put_one, (q.clone(), 42)).unwrap());
    assert_eq!(q.get_timeout(WATCHDOG).unwrap(), [42, 42]);
    join_ok(&p);
}

fn fill((q, n): (Q, u64)) {
    for i in 0..n {
        q.try_put(&[i, i]).unwrap();
    }
    assert!(matches!(q.try_put(&[0, 0]), Err(Error::Full)));
}

#[test]
fn capacity_and_len_empty_full_process() {
    shmproc::init();
    let mut r = Reaper::new();
    let q: Q = Queue::new(5).unwrap();
    assert_eq!(q.capacity(), 5);
    assert!(q.is_empty());
    let p = r.watch(Process::spawn(fill, (q.clone(), 5)).unwrap());
    join_ok(&p);
    assert_eq!(q.len(), 5);
    assert!(q.is_full());
    for i in 0..5 {
        assert_eq!(q.try_get().unwrap(), [i, i]);
    }
    assert!(q.is_empty());
}

fn get_until_closed(q: Q) -> Result<(), String> {
    match q.get_timeout(WATCHDOG) {
        Err(Error::Closed) => Ok(()),
        other => Err(format!("expected Closed, got {other:?}")),
    }
}

#[test]
fn disconnect_close_wakes_a_getter_in_another_process() {
    shmproc::init();
    let mut r = Reaper::new();
    let name = unique_name("q-close-wakes");
    let q: Q = Queue::builder().name(&name).maxsize(2).create().unwrap();
    let p = r.watch(Process::spawn(get_until_closed, q.clone()).unwrap());
    // The child's get has gone to sleep on the empty ring.
    wait_for_counter(&name, "get sleeps (empty)", 1);
    q.close();
    join_ok(&p);
}

fn put_get_loop((q, n): (Q, u64)) {
    for i in 0..n {
        q.put(&[i, i]).unwrap();
        q.get().unwrap();
    }
}

#[test]
fn linearizable_process() {
    shmproc::init();
    let mut r = Reaper::new();
    // Four processes each put then get: never more than 4 in a queue of 4,
    // so no put ever blocks forever and the queue ends empty.
    let q: Q = Queue::new(4).unwrap();
    let ps: Vec<_> = (0..4)
        .map(|_| r.watch(Process::spawn(put_get_loop, (q.clone(), 20_000)).unwrap()))
        .collect();
    for p in &ps {
        join_ok(p);
    }
    assert!(q.is_empty());
}

fn put_64_mib(q: Queue<u8, Pod>) {
    let msg: Vec<u8> = (0..64usize << 20).map(|i| (i ^ (i >> 11)) as u8).collect();
    q.put_bytes(&msg).unwrap();
}

#[test]
fn a_64_mib_message_between_processes_is_intact() {
    shmproc::init();
    let mut r = Reaper::new();
    let q: Queue<u8, Pod> = Queue::new(2).unwrap();
    let p = r.watch(Process::spawn(put_64_mib, q.clone()).unwrap());
    let got = q.get_bytes_timeout(WATCHDOG).unwrap();
    assert_eq!(got.len(), 64 << 20);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, b)| *b == (i ^ (i >> 11)) as u8));
    join_ok(&p);
}

fn drop_handles(q: Queue<Vec<String>>) {
    q.put(&vec!["from the child".to_string()]).unwrap();
    drop(q);
}

#[test]
fn drops_process() {
    shmproc::init();
    let mut r = Reaper::new();
    let name = unique_name("q-drops");
    let q: Queue<Vec<String>> = Queue::builder().name(&name).maxsize(2).create().unwrap();
    let p = r.watch(Process::spawn(drop_handles, q.clone()).unwrap());
    join_ok(&p);
    // A child's drop removes nothing: the creator's queue and its item stay.
    assert_eq!(q.get().unwrap(), vec!["from the child".to_string()]);
    drop(q);
    assert!(!std::path::Path::new(&format!("/dev/shm/shmproc.{name}")).exists());
}
