//! The public API contract (`API.md`) written out as code: every name and
//! signature the contract fixes is used here as the contract writes it, so a
//! crate that drifts from the contract fails to compile or fails a test.
//!
//! Where the crate ever has to differ from the contract's text, the line
//! says `// DEVIATION: <contract> vs <crate>` (none today).
//!
//! Every test that launches processes calls `shmproc::init()` first (a
//! re-executed child runs only its own test, and `init()` runs its entry
//! there); every wait is bounded; a `Reaper` (or the pool's drop) kills and
//! reaps children on every exit path; named segments use `unique_name` and
//! are removed by their creator's drop or by `UnlinkOnDrop`.

mod common;

use std::ops::DerefMut;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{
    counter, join, unique_name, wait_for, wait_for_counter, watchdog, Reaper, Watchdog, WATCHDOG,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shmproc::{
    Array, ArrayGuard, AsyncResult, Barrier, BoundedSemaphore, Condition, Connection, Error, Event,
    JoinableQueue, Lock, Pipe, Pod, PodQueue, Pool, Process, Queue, RLock, RawArray, RawValue,
    Receiver, Semaphore, Sender, StartMethod, Value, ValueGuard,
};
use shmproc::{LockGuard, RLockGuard, SemaphoreGuard};

const SHORT: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    id: u32,
    payload: String,
}

fn job(id: u32) -> Job {
    Job {
        id,
        payload: "x".repeat(id as usize),
    }
}

/// Removes a named segment when dropped (also on panic).
struct UnlinkOnDrop(String);

impl Drop for UnlinkOnDrop {
    fn drop(&mut self) {
        let _ = shmproc::unlink(&self.0);
    }
}

fn shm_path(name: &str) -> String {
    format!("/dev/shm/shmproc.{name}")
}

// ---- static checks ----------------------------------------------------------

/// Shared-object handles: `Clone + Send + Sync` and serde.
fn assert_handle<H: Clone + Send + Sync + Serialize + DeserializeOwned>() {}

/// A guard dereferences mutably to `T`.
fn assert_deref_mut<T: ?Sized, G: DerefMut<Target = T>>(_: &G) {}

/// Every variant users match on, by name, with the fields the contract names.
fn variant(e: &Error) -> String {
    match e {
        Error::Timeout => "timeout".into(),
        Error::Empty => "empty".into(),
        Error::Full => "full".into(),
        Error::Closed => "closed".into(),
        Error::WorkerDied { pid, signal } => format!("worker-died {pid} {signal:?}"),
        Error::TaskPanicked { message } => format!("task-panicked {message}"),
        Error::MessageTooLarge { size, max } => format!("message-too-large {size} {max}"),
        Error::Incompatible { .. } => "incompatible".into(),
        Error::Corrupt { .. } => "corrupt".into(),
        Error::BrokenBarrier => "broken-barrier".into(),
        Error::Io(io) => {
            let io: &std::io::Error = io;
            format!("io {}", io.kind())
        }
        other => format!("other {other}"),
    }
}

/// `shmproc::Result<T>` is the crate's result.
fn make_lock() -> shmproc::Result<Lock> {
    Lock::new()
}

#[test]
fn handles_are_clone_send_sync_serde() {
    let _w = Watchdog::new("handles_are_clone_send_sync_serde");
    assert_handle::<Queue<Job>>();
    assert_handle::<Queue<u64, Pod>>();
    assert_handle::<PodQueue<u64>>();
    assert_handle::<JoinableQueue<Job>>();
    assert_handle::<Connection<Job>>();
    assert_handle::<Receiver<Job>>();
    assert_handle::<Sender<Job>>();
    assert_handle::<Value<u64>>();
    assert_handle::<Array<f64>>();
    assert_handle::<RawValue<u32>>();
    assert_handle::<RawArray<u8>>();
    assert_handle::<Lock>();
    assert_handle::<RLock>();
    assert_handle::<Semaphore>();
    assert_handle::<BoundedSemaphore>();
    assert_handle::<Event>();
    assert_handle::<Condition>();
    assert_handle::<Barrier>();

    // Named handles travel anywhere, e.g. serialized into a message.
    let name = unique_name("api-ser");
    let q: Queue<Job> = Queue::builder().name(&name).maxsize(4).create().unwrap();
    let bytes = postcard::to_stdvec(&q).unwrap();
    let back: Queue<Job> = postcard::from_bytes(&bytes).unwrap();
    back.put(&job(3)).unwrap();
    assert_eq!(q.get().unwrap(), job(3));
    // An anonymous one cannot: an error, never a handle that points nowhere.
    let anon: Queue<Job> = Queue::new(4).unwrap();
    assert!(postcard::to_stdvec(&anon).is_err());
    let carrier: Queue<Queue<Job>> = Queue::new(2).unwrap();
    // "the failure is a clear error": it names the anonymous handle.
    let err = carrier.put(&anon).unwrap_err();
    assert!(err.to_string().contains("anonymous"), "{err}");
    carrier.put(&q).unwrap(); // a named one travels in a message
    carrier.get().unwrap().put(&job(4)).unwrap();
    assert_eq!(q.get().unwrap(), job(4));
}

// ---- errors -----------------------------------------------------------------

#[test]
fn errors_users_match_on() {
    let _w = Watchdog::new("errors_users_match_on");
    assert!(make_lock().is_ok());
    let io = Error::Io(std::io::Error::from(std::io::ErrorKind::NotFound));
    assert_eq!(variant(&io), "io entity not found");

    let q: PodQueue<u32> = PodQueue::new(1).unwrap();
    assert_eq!(variant(&q.try_get().unwrap_err()), "empty");
    assert_eq!(variant(&q.get_timeout(SHORT).unwrap_err()), "timeout");
    q.put(&1).unwrap();
    assert_eq!(variant(&q.try_put(&2).unwrap_err()), "full");
    q.close();
    assert_eq!(variant(&q.put(&3).unwrap_err()), "closed");

    let (a, b) = Pipe::duplex::<String>();
    a.send_bytes(b"hello").unwrap();
    let mut small = [0u8; 2];
    match b.recv_bytes_into(&mut small) {
        Err(Error::MessageTooLarge { size, max }) => assert_eq!((size, max), (5, 2)),
        other => panic!("expected MessageTooLarge, found {other:?}"),
    }

    // Opening a segment of another kind or type.
    let name = unique_name("api-incompat");
    let _q8: PodQueue<u8> = PodQueue::builder().name(&name).create().unwrap();
    let e = PodQueue::<u16>::open(&name).unwrap_err();
    assert_eq!(variant(&e), "incompatible", "{e}");
    let e = Lock::open(&name).unwrap_err();
    assert_eq!(variant(&e), "incompatible", "{e}");

    // A wait on a broken barrier.
    let b = Barrier::new(2).unwrap();
    b.abort();
    assert_eq!(variant(&b.wait().unwrap_err()), "broken-barrier");

    // A segment whose header fails validation.
    let name = unique_name("api-corrupt");
    let _lock = Lock::builder().name(&name).create().unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(shm_path(&name))
        .unwrap()
        .write_all_at(&[0xAB; 8], 0)
        .unwrap();
    let e = Lock::open(&name).unwrap_err();
    assert_eq!(variant(&e), "corrupt", "{e}");
    // Every message names what was expected and what was found.
    let msg = e.to_string();
    assert!(msg.contains("expected") && msg.contains("found"), "{msg}");
}

// ---- Queue ------------------------------------------------------------------

#[test]
fn queue_contract() -> shmproc::Result<()> {
    let _w = Watchdog::new("queue_contract");
    let q: Queue<Job> = Queue::new(1024)?;
    assert_eq!(q.capacity(), 1024);
    assert!(q.is_empty() && !q.is_full());
    assert_eq!(q.len(), 0);
    q.put(&job(1))?;
    q.put_timeout(&job(2), WATCHDOG)?;
    q.try_put(&job(3))?;
    assert_eq!(q.len(), 3);
    assert!(!q.is_empty());
    let first: Job = q.get()?;
    let second: Job = q.get_timeout(WATCHDOG)?;
    let third: Job = q.try_get()?;
    assert_eq!([first, second, third], [job(1), job(2), job(3)]);
    assert!(matches!(q.try_get(), Err(Error::Empty)));
    assert!(matches!(q.get_timeout(SHORT), Err(Error::Timeout)));

    // Messages of any size (one above the bulk area streams to a consumer
    // while it is put, so it is put from another thread).
    let big = Job {
        id: 9,
        payload: "y".repeat(1 << 20),
    };
    let (q2, big2) = (q.clone(), big.clone());
    let producer = std::thread::spawn(move || q2.put_timeout(&big2, WATCHDOG));
    assert_eq!(q.get_timeout(WATCHDOG)?, big);
    producer.join().unwrap()?;

    // Raw frames.
    q.put_bytes(b"raw frame")?;
    let frame: Vec<u8> = q.get_bytes()?;
    assert_eq!(frame, b"raw frame");

    // Batches.
    q.put_many(&[job(4), job(5), job(6)])?;
    let mut out: Vec<Job> = Vec::new();
    assert_eq!(q.get_many(&mut out, 2)?, 2);
    assert_eq!(q.get_many(&mut out, 10)?, 1);
    assert_eq!(out, [job(4), job(5), job(6)]);

    // Full, bounded.
    let small: Queue<u8> = Queue::new(2)?;
    small.put(&1)?;
    small.put(&2)?;
    assert!(small.is_full());
    assert!(matches!(small.try_put(&3), Err(Error::Full)));
    assert!(matches!(small.put_timeout(&3, SHORT), Err(Error::Timeout)));

    // close(): later puts fail with Closed; gets drain, then Closed.
    small.close();
    assert!(matches!(small.put(&3), Err(Error::Closed)));
    assert!(matches!(small.try_put(&3), Err(Error::Closed)));
    assert_eq!(small.get()?, 1);
    assert_eq!(small.try_get()?, 2);
    assert!(matches!(small.get(), Err(Error::Closed)));
    assert!(matches!(small.get_timeout(SHORT), Err(Error::Closed)));
    Ok(())
}

#[test]
fn pod_queue_contract() -> shmproc::Result<()> {
    let _w = Watchdog::new("pod_queue_contract");
    // The zero-copy path, chosen explicitly: both spellings, the same methods.
    let a: Queue<[f32; 4], Pod> = Queue::new(8)?;
    let b: PodQueue<[f32; 4]> = a.clone();
    a.put(&[1.0, 2.0, 3.0, 4.0])?;
    a.put_timeout(&[5.0; 4], WATCHDOG)?;
    a.try_put(&[6.0; 4])?;
    assert_eq!(b.len(), 3);
    assert_eq!(b.get()?, [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(b.get_timeout(WATCHDOG)?, [5.0; 4]);
    assert_eq!(b.try_get()?, [6.0; 4]);
    b.put_many(&[[7.0; 4], [8.0; 4]])?;
    let mut out = Vec::new();
    assert_eq!(a.get_many(&mut out, 8)?, 2);
    assert_eq!(out, [[7.0; 4], [8.0; 4]]);
    a.put_bytes(bytemuck::bytes_of(&[9.0f32; 4]))?;
    assert_eq!(b.get_bytes()?, bytemuck::bytes_of(&[9.0f32; 4]));
    assert!(b.is_empty() && !b.is_full());
    assert_eq!(b.capacity(), 8);
    assert!(matches!(b.try_get(), Err(Error::Empty)));
    a.close();
    assert!(matches!(b.put(&[0.0; 4]), Err(Error::Closed)));
    Ok(())
}

#[test]
fn named_segments_open_persist_and_unlink() -> shmproc::Result<()> {
    let _w = Watchdog::new("named_segments_open_persist_and_unlink");
    let name = unique_name("api-jobs");
    {
        let q: Queue<Job> = Queue::builder().name(&name).maxsize(1024).create()?;
        let other: Queue<Job> = Queue::open(&name)?; // as an unrelated process would
        assert_eq!(other.capacity(), 1024);
        other.put(&job(7))?;
        assert_eq!(q.get()?, job(7));
        assert!(Path::new(&shm_path(&name)).exists());
        drop(q);
        // The opener's handle does not keep the name alive...
        assert!(Queue::<Job>::open(&name).is_err());
    }
    // ...and the creator's last handle removed the segment.
    assert!(!Path::new(&shm_path(&name)).exists());

    // `.persist(true)` keeps it past the creator; `shmproc::unlink` removes it.
    let name = unique_name("api-persist");
    let guard = UnlinkOnDrop(name.clone());
    let q: Queue<Job> = Queue::builder()
        .name(&name)
        .maxsize(4)
        .persist(true)
        .create()?;
    q.put(&job(1))?;
    drop(q);
    let again: Queue<Job> = Queue::open(&name)?;
    assert_eq!(again.get()?, job(1));
    drop(again);
    shmproc::unlink(&name)?;
    assert!(!Path::new(&shm_path(&name)).exists());
    assert!(Queue::<Job>::open(&name).is_err());
    std::mem::forget(guard);

    // The same for another kind of object.
    let name = unique_name("api-persist-lock");
    let _guard = UnlinkOnDrop(name.clone());
    drop(Lock::builder().name(&name).persist(true).create()?);
    drop(Lock::open(&name)?);
    shmproc::unlink(&name)?;
    assert!(Lock::open(&name).is_err());
    Ok(())
}

// ---- JoinableQueue ----------------------------------------------------------

fn consume_and_mark_done((q, done): (JoinableQueue<Job>, RawValue<u32>)) -> shmproc::Result<()> {
    loop {
        match q.get() {
            Ok(_) => {
                done.fetch_add(1);
                q.task_done()?;
            }
            Err(Error::Closed) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

#[test]
fn joinable_queue_task_done_and_join() -> shmproc::Result<()> {
    shmproc::init();
    let _w = Watchdog::new("joinable_queue_task_done_and_join");
    let mut r = Reaper::new();
    let q: JoinableQueue<Job> = JoinableQueue::new(16)?;
    let done = RawValue::new(0u32)?;
    let p = r.watch(Process::spawn(
        consume_and_mark_done,
        (q.clone(), done.clone()),
    )?);
    for i in 0..5 {
        q.put(&job(i))?;
    }
    let q2 = q.clone();
    watchdog(30, move || q2.join()).expect("join");
    assert_eq!(done.get(), 5);
    q.close();
    assert_eq!(join(&p), 0);

    // In-process, as in Python.
    let q: JoinableQueue<u32> = JoinableQueue::new(4)?;
    q.put(&1)?;
    let _item = q.get()?;
    q.task_done()?;
    q.join()?;
    Ok(())
}

// ---- Pipe -------------------------------------------------------------------

#[test]
fn pipe_contract() -> shmproc::Result<()> {
    let _w = Watchdog::new("pipe_contract");
    let (a, b): (Connection<String>, Connection<String>) = Pipe::duplex::<String>();
    a.send(&"ping".to_string())?;
    assert!(b.poll(WATCHDOG));
    let got: String = b.recv()?;
    assert_eq!(got, "ping");
    b.send(&"pong".to_string())?;
    assert_eq!(a.recv_timeout(WATCHDOG)?, "pong");
    assert!(!a.poll(SHORT));
    assert!(matches!(a.recv_timeout(SHORT), Err(Error::Timeout)));

    a.send_bytes(b"frame")?;
    let frame: Vec<u8> = b.recv_bytes()?;
    assert_eq!(frame, b"frame");
    a.send_bytes(b"into")?;
    let mut buf = [0u8; 16];
    let n: usize = b.recv_bytes_into(&mut buf)?;
    assert_eq!(&buf[..n], b"into");

    // The other end dropped: buffered messages first, then Closed.
    a.send(&"last".to_string())?;
    drop(a);
    assert_eq!(b.recv()?, "last");
    assert!(matches!(b.recv(), Err(Error::Closed)));
    assert!(matches!(b.recv_timeout(WATCHDOG), Err(Error::Closed)));

    // Python's Pipe(duplex=False) order: (receiver, sender).
    let (rx, tx): (Receiver<u32>, Sender<u32>) = Pipe::simplex::<u32>();
    tx.send(&7)?;
    assert!(rx.poll(WATCHDOG));
    assert_eq!(rx.recv()?, 7);
    tx.send(&8)?;
    assert_eq!(rx.recv_timeout(WATCHDOG)?, 8);
    tx.send_bytes(&9u32.to_le_bytes())?;
    tx.send_bytes(b"abc")?;
    let bytes: Vec<u8> = rx.recv_bytes()?;
    assert_eq!(bytes.len(), 4);
    let mut buf = [0u8; 8];
    assert_eq!(rx.recv_bytes_into(&mut buf)?, 3);
    assert!(!rx.poll(SHORT));
    tx.send(&10)?;
    drop(tx);
    assert_eq!(rx.recv()?, 10);
    assert!(matches!(rx.recv(), Err(Error::Closed)));
    Ok(())
}

// ---- Value and Array --------------------------------------------------------

#[test]
fn value_and_array_contract() -> shmproc::Result<()> {
    let _w = Watchdog::new("value_and_array_contract");
    let v: Value<u64> = Value::new(5)?;
    {
        let r: shmproc::Result<ValueGuard<u64>> = v.lock();
        let mut g = r?;
        assert_deref_mut::<u64, _>(&g);
        assert!(!g.owner_died());
        *g += 1;
        // The Value/Array locks' try: `Ok(None)` when held, as the others.
        let held: Option<ValueGuard<u64>> = v.try_lock()?;
        assert!(held.is_none());
    }
    assert_eq!(v.get(), 6);
    assert!(v.try_lock()?.is_some());
    v.set(10);
    let x: u64 = v.get();
    assert_eq!(x, 10);
    // Integer values: atomic read-modify-write without the lock.
    assert_eq!(v.fetch_add(5), 10);
    assert_eq!(v.get(), 15);
    let f: Value<f64> = Value::new(1.5)?;
    f.set(f.get() * 2.0);
    assert_eq!(f.get(), 3.0);

    let a: Array<f64> = Array::new(4)?;
    assert_eq!(a.len(), 4);
    assert_eq!(a.to_vec(), [0.0; 4]); // zeroed
    let b: Array<u32> = Array::from_slice(&[1, 2, 3])?;
    {
        let r: shmproc::Result<ArrayGuard<u32>> = b.lock();
        let mut g = r?;
        assert_deref_mut::<[u32], _>(&g);
        assert!(!g.owner_died());
        g[0] = 10;
        for x in g.iter_mut().skip(1) {
            *x *= 2;
        }
        let held: Option<ArrayGuard<u32>> = b.try_lock()?;
        assert!(held.is_none());
    }
    assert_eq!(b.to_vec(), [10, 4, 6]);
    assert_eq!(b.get(2), Some(6));
    b.set(2, 7)?;
    assert_eq!(b.to_vec(), [10, 4, 7]);

    // No lock (Python lock=False).
    let rv: RawValue<u32> = RawValue::new(1)?;
    rv.set(rv.get() + 1);
    assert_eq!(rv.get(), 2);
    assert_eq!(rv.fetch_add(3), 2);
    assert_eq!(rv.get(), 5);
    let ra: RawArray<i16> = RawArray::new(3)?;
    assert_eq!(ra.to_vec(), [0, 0, 0]);
    let rb: RawArray<i16> = RawArray::from_slice(&[-1, 2])?;
    assert_eq!(rb.len(), 2);
    rb.set(1, 5)?;
    assert_eq!(rb.get(1), Some(5));
    assert_eq!(rb.to_vec(), [-1, 5]);
    Ok(())
}

// ---- synchronization ----------------------------------------------------------

#[test]
fn lock_rlock_semaphores_contract() -> shmproc::Result<()> {
    let _w = Watchdog::new("lock_rlock_semaphores_contract");
    let lock = Lock::new()?;
    let g: LockGuard = lock.acquire()?;
    assert!(!g.owner_died());
    let l2 = lock.clone();
    let other = std::thread::spawn(move || {
        (
            variant(&l2.acquire_timeout(SHORT).unwrap_err()),
            // Held elsewhere: `Ok(None)`, as Python's `acquire(False)` is `False`.
            l2.try_acquire().unwrap().is_none(),
        )
    });
    assert_eq!(other.join().unwrap(), ("timeout".to_string(), true));
    drop(g); // guards release on drop
    let g: Option<LockGuard> = lock.try_acquire()?;
    assert!(g.is_some());
    drop(g);
    drop(lock.acquire_timeout(WATCHDOG)?);

    let rlock = RLock::new()?;
    let outer: RLockGuard = rlock.acquire()?;
    let inner: RLockGuard = rlock.try_acquire()?.expect("reentrant");
    assert!(!inner.owner_died());
    let r2 = rlock.clone();
    assert!(
        std::thread::spawn(move || r2.try_acquire().unwrap().is_none())
            .join()
            .unwrap()
    );
    drop(inner);
    drop(outer);
    let r2 = rlock.clone();
    assert!(
        std::thread::spawn(move || r2.acquire_timeout(WATCHDOG).is_ok())
            .join()
            .unwrap()
    );

    let sem = Semaphore::new(2)?;
    let p1: SemaphoreGuard = sem.acquire()?;
    let p2: SemaphoreGuard = sem.try_acquire()?.expect("a free permit");
    assert_eq!(sem.value(), 0);
    assert!(matches!(sem.acquire_timeout(SHORT), Err(Error::Timeout)));
    assert!(sem.try_acquire()?.is_none());
    drop(p1);
    assert_eq!(sem.value(), 1);
    drop(p2);
    assert_eq!(sem.value(), 2);
    let empty = Semaphore::new(0)?;
    empty.release()?;
    assert_eq!(empty.value(), 1);
    drop(empty.acquire_timeout(WATCHDOG)?);

    let bounded = BoundedSemaphore::new(1)?;
    assert!(bounded.release().is_err()); // above its initial value
    let permit = bounded.acquire()?;
    assert!(bounded.try_acquire()?.is_none());
    assert!(matches!(
        bounded.acquire_timeout(SHORT),
        Err(Error::Timeout)
    ));
    drop(permit);
    assert_eq!(bounded.value(), 1);
    Ok(())
}

#[test]
fn event_condition_barrier_contract() -> shmproc::Result<()> {
    let _w = Watchdog::new("event_condition_barrier_contract");
    // Named, so that the counters `shmproc inspect` shows say when a
    // waiter sleeps.
    let ev_name = unique_name("api-event");
    let ev = Event::builder().name(&ev_name).create()?;
    assert!(!ev.is_set());
    let waited: bool = ev.wait_timeout(SHORT);
    assert!(!waited);
    let slept = counter(&ev_name, "blocked waits");
    let e2 = ev.clone();
    let setter = std::thread::spawn(move || {
        wait_for_counter(&ev_name, "blocked waits", slept + 1);
        e2.set();
    });
    let e3 = ev.clone();
    watchdog(30, move || e3.wait());
    setter.join().unwrap();
    assert!(ev.is_set());
    assert!(ev.wait_timeout(SHORT));
    ev.clear();
    assert!(!ev.is_set());

    let cond_name = unique_name("api-condition");
    let cond = Condition::builder().name(&cond_name).create()?;
    let flag = RawValue::new(0u32)?;
    let g = cond.acquire()?;
    let (g, notified) = cond.wait_timeout(g, SHORT)?;
    assert!(!notified); // nobody notified: timed out, lock held again
    drop(g);
    let waits = counter(&cond_name, "waits");
    let (c2, f2) = (cond.clone(), flag.clone());
    let waiter = std::thread::spawn(move || -> shmproc::Result<()> {
        let mut g = c2.acquire()?;
        while f2.get() == 0 {
            g = c2.wait(g)?;
        }
        Ok(())
    });
    let (c3, f3) = (cond.clone(), flag.clone());
    let notifier = std::thread::spawn(move || -> shmproc::Result<()> {
        wait_for_counter(&cond_name, "waits", waits + 1);
        let g = c3.acquire_timeout(WATCHDOG)?;
        f3.set(1);
        c3.notify(1);
        c3.notify_all();
        drop(g);
        Ok(())
    });
    watchdog(30, move || waiter.join().unwrap())?;
    notifier.join().unwrap()?;
    drop(cond.try_acquire()?.expect("free"));
    // wait_for / wait_for_timeout: the guard back, and whether the
    // predicate held (Python's return value).
    let g = cond.wait_for(cond.acquire()?, || flag.get() == 1)?;
    let (g, held): (_, bool) = cond.wait_for_timeout(g, SHORT, || flag.get() == 2)?;
    assert!(!held);
    drop(g);
    // Python's Condition(lock): over an existing Lock or RLock, shared.
    let lock = Lock::new()?;
    let over_lock = Condition::with_lock(&lock)?;
    let g: LockGuard = lock.acquire()?;
    assert!(over_lock.try_acquire()?.is_none());
    let (g, notified) = over_lock.wait_timeout(g, SHORT)?;
    assert!(!notified);
    drop(g);
    let rlock = RLock::new()?;
    let over_rlock = Condition::with_rlock(&rlock)?;
    let g: RLockGuard = rlock.acquire()?;
    let (g, held) = over_rlock.wait_for_timeout(g, SHORT, || true)?;
    assert!(held);
    drop(g);

    let barrier = Barrier::new(2)?;
    let b2 = barrier.clone();
    let party = std::thread::spawn(move || b2.wait());
    let mine = barrier.wait_timeout(WATCHDOG)?;
    let theirs = party.join().unwrap()?;
    assert_eq!(mine + theirs, 1); // arrival indexes 0 and 1
    let (parties, waiting): (u32, u32) = (barrier.parties(), barrier.n_waiting());
    assert_eq!((parties, waiting), (2, 0));
    // Python's semantics: a wait that times out breaks the barrier for every
    // party until reset(); abort() does the same.
    assert!(matches!(
        barrier.wait_timeout(SHORT),
        Err(Error::BrokenBarrier)
    ));
    let broken: bool = barrier.broken();
    assert!(broken);
    assert!(matches!(barrier.wait(), Err(Error::BrokenBarrier)));
    barrier.reset();
    assert!(!barrier.broken());
    barrier.abort();
    assert!(barrier.broken());
    barrier.reset();
    // The builder: an action run by one party per round, a default timeout.
    let with_action = Barrier::builder()
        .parties(1)
        .action(note_round)
        .timeout(WATCHDOG)
        .create()?;
    with_action.wait()?;
    with_action.wait()?;
    assert_eq!(ROUNDS_NOTED.load(std::sync::atomic::Ordering::SeqCst), 2);
    Ok(())
}

static ROUNDS_NOTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A barrier action: a fn item.
fn note_round() {
    // SeqCst: a plain counter read once by the test; any order would do.
    ROUNDS_NOTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// Holds every kind of lock guard, says so, and sleeps until killed.
fn hold_locks_until_killed(
    (lock, rlock, value, array, ready): (Lock, RLock, Value<u64>, Array<u8>, RawValue<u32>),
) {
    let _a = lock.acquire().unwrap();
    let _b = rlock.acquire().unwrap();
    let mut v = value.lock().unwrap();
    *v = 42;
    let mut arr = array.lock().unwrap();
    arr[0] = 1;
    ready.set(1);
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn dead_holder_gives_lock_with_owner_died() -> shmproc::Result<()> {
    shmproc::init();
    let _w = Watchdog::new("dead_holder_gives_lock_with_owner_died");
    let mut r = Reaper::new();
    let lock = Lock::new()?;
    let rlock = RLock::new()?;
    let value = Value::new(0u64)?;
    let array = Array::<u8>::new(2)?;
    let ready = RawValue::new(0u32)?;
    let p = r.watch(Process::spawn(
        hold_locks_until_killed,
        (
            lock.clone(),
            rlock.clone(),
            value.clone(),
            array.clone(),
            ready.clone(),
        ),
    )?);
    wait_for(&ready, 1);
    assert!(matches!(lock.acquire_timeout(SHORT), Err(Error::Timeout)));
    p.kill()?;
    assert_eq!(join(&p), -9);
    let g = lock.acquire_timeout(WATCHDOG)?;
    assert!(g.owner_died());
    let g = rlock.acquire_timeout(WATCHDOG)?;
    assert!(g.owner_died());
    let g = value.lock()?;
    assert!(g.owner_died());
    assert_eq!(*g, 42); // possibly half-written data is still there
    let g = array.lock()?;
    assert!(g.owner_died());
    assert_eq!(g[0], 1);
    Ok(())
}

// ---- processes ----------------------------------------------------------------

fn worker((q, n): (Queue<String>, u32)) {
    q.put(&format!("hello {n}")).unwrap();
}

/// Reports its own name and its parent's pid.
fn report_identity(q: Queue<String>) -> shmproc::Result<()> {
    let me = shmproc::current_process();
    let parent = shmproc::parent_process().ok_or(Error::Closed)?;
    q.put(&format!("{} {} {}", me.name(), me.pid(), parent.pid()))
}

fn entry_panics(_: ()) {
    panic!("entry panicked on purpose");
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

#[test]
fn process_contract() -> shmproc::Result<()> {
    shmproc::init();
    let _w = Watchdog::new("process_contract");
    let mut r = Reaper::new();

    // The contract's own example.
    let q = Queue::<String>::new(16)?;
    let p = r.watch(Process::spawn(worker, (q.clone(), 7))?);
    assert_eq!(q.get_timeout(WATCHDOG)?, "hello 7");
    p.join()?;
    assert_eq!(p.exitcode(), Some(0));
    assert!(!p.is_alive());

    // Builder: name, daemon, start method.
    let p = r.watch(
        Process::builder()
            .name("api-child")
            .daemon(true)
            .start_method(StartMethod::Spawn)
            .spawn(report_identity, q.clone())?,
    );
    assert_eq!(p.name(), "api-child");
    let pid: u32 = p.pid();
    assert_eq!(
        q.get_timeout(WATCHDOG)?,
        format!("api-child {pid} {}", std::process::id())
    );
    assert_eq!(join(&p), 0);

    // Fork takes a capturing closure.
    let cell = RawValue::new(0u32)?;
    let (c, base) = (cell.clone(), 40u32);
    let p = r.watch(
        Process::builder()
            .start_method(StartMethod::Fork)
            .spawn(move |x: u32| c.set(base + x), 2)?,
    );
    assert_eq!(join(&p), 0);
    assert_eq!(cell.get(), 42);

    // A child whose entry panics exits non-zero, visible in exitcode.
    let p = r.watch(Process::spawn(entry_panics, ())?);
    assert_ne!(join(&p), 0);
    assert!(matches!(p.exitcode(), Some(c) if c != 0));

    // A running child: is_alive, join_timeout, terminate (SIGTERM), kill (SIGKILL).
    let p = r.watch(Process::spawn(sleep_ms, 60_000)?);
    assert!(p.is_alive());
    assert_eq!(p.exitcode(), None);
    assert!(matches!(p.join_timeout(SHORT), Err(Error::Timeout)));
    assert!(shmproc::active_children()
        .iter()
        .any(|c| c.pid() == p.pid()));
    p.terminate()?;
    assert_eq!(join(&p), -15);
    assert_eq!(p.exitcode(), Some(-15));
    assert!(!p.is_alive());
    assert!(!shmproc::active_children()
        .iter()
        .any(|c| c.pid() == p.pid()));
    let p = r.watch(Process::spawn(sleep_ms, 60_000)?);
    p.kill()?;
    assert_eq!(join(&p), -9);
    assert_eq!(p.exitcode(), Some(-9));

    assert!(shmproc::cpu_count() >= 1);
    let me = shmproc::current_process();
    assert_eq!(me.pid(), std::process::id());
    assert!(!me.name().is_empty());
    assert!(shmproc::parent_process().is_none()); // not launched by shmproc
    Ok(())
}

// ---- Pool -----------------------------------------------------------------------

fn square(x: u64) -> u64 {
    x * x
}

fn add(a: u64, b: u64) -> u64 {
    a + b
}

fn panic_on_7(x: u64) -> u64 {
    if x == 7 {
        panic!("seven is not allowed");
    }
    x
}

/// Kills its own worker (as the OOM killer would).
fn die_by_sigkill(_: ()) -> u64 {
    // SAFETY: raise only sends a signal to this process.
    unsafe { libc::raise(libc::SIGKILL) };
    0
}

/// Squares `x` once the named event `gate` is set (bounded wait): a task
/// that cannot be done before the test says so.
fn gated_square((x, gate): (u64, String)) -> u64 {
    Event::open(&gate)
        .expect("opening the gate")
        .wait_timeout(WATCHDOG / 2);
    x * x
}

static LEVEL: AtomicU64 = AtomicU64::new(0);

fn set_level(level: u64) {
    LEVEL.store(level, Ordering::SeqCst);
}

fn read_level(x: u64) -> u64 {
    LEVEL.load(Ordering::SeqCst) + x
}

fn pid_of(_: u64) -> u32 {
    std::process::id()
}

#[test]
fn pool_contract() -> shmproc::Result<()> {
    shmproc::init();
    let _w = Watchdog::new("pool_contract");
    let pool = Pool::new(2)?;
    let squares: Vec<u64> = pool.map(square, 0..10_000u64)?;
    assert_eq!(squares, (0..10_000u64).map(square).collect::<Vec<_>>());

    // `imap(f, iter)`: an iterator of `Result<R>`.
    let streamed: Vec<shmproc::Result<u64>> = pool.imap(square, 0..10u64).collect();
    let streamed: Vec<u64> = streamed.into_iter().collect::<shmproc::Result<_>>()?;
    assert_eq!(streamed, (0..10u64).map(square).collect::<Vec<_>>());
    let mut unordered: Vec<u64> = pool
        // `imap_unordered(f, iter)`: an iterator of `Result<R>`.
        .imap_unordered(square, 0..10u64)
        .collect::<shmproc::Result<_>>()?;
    unordered.sort_unstable();
    assert_eq!(unordered, streamed);

    assert_eq!(pool.starmap(add, vec![(1u64, 2u64), (3, 4)])?, [3, 7]);
    assert_eq!(pool.apply(square, 12)?, 144);

    // `apply_async(f, args) -> AsyncResult<R>`.
    let gate = unique_name("api-pool-gate");
    let open = Event::builder().name(&gate).create()?;
    let one: AsyncResult<u64> = pool.apply_async(gated_square, (5, gate));
    assert!(!one.ready());
    assert!(matches!(one.get_timeout(SHORT), Err(Error::Timeout)));
    open.set();
    one.wait();
    assert!(one.ready());
    assert_eq!(one.get()?, 25);
    // `map_async(..) -> AsyncResult<Vec<R>>`.
    let all: AsyncResult<Vec<u64>> = pool.map_async(square, 0..100u64);
    assert_eq!(all.get_timeout(WATCHDOG)?[99], 99 * 99);

    // A task that panics fails that task only.
    match pool.apply(panic_on_7, 7) {
        Err(Error::TaskPanicked { message }) => assert_eq!(message, "seven is not allowed"),
        other => panic!("expected TaskPanicked, found {other:?}"),
    }
    // A worker that dies fails the task it held; it is replaced.
    match pool.apply(die_by_sigkill, ()) {
        Err(Error::WorkerDied { pid, signal }) => {
            assert_ne!(pid, 0);
            assert_eq!(signal, Some(libc::SIGKILL));
        }
        other => panic!("expected WorkerDied, found {other:?}"),
    }
    assert_eq!(pool.map(square, 0..100u64)?[9], 81);

    pool.close();
    assert!(pool.map(square, [1u64]).is_err());
    pool.join()?;

    let pool = Pool::builder()
        .processes(2)
        .initializer(set_level, 100u64)
        .maxtasksperchild(1)
        .chunksize(1)
        .build()?;
    assert_eq!(pool.map(read_level, 0..4u64)?, [100, 101, 102, 103]);
    let mut pids = pool.map(pid_of, 0..6u64)?;
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 6, "one task per worker: {pids:?}");
    pool.terminate();
    assert!(pool.apply(square, 2).is_err());
    pool.join()?;
    Ok(())
}
