//! Waiting on several objects (`shmproc::wait`, Python's
//! `multiprocessing.connection.wait`) and the async calls, under tokio and
//! smol, with real processes.
//!
//! Every test that spawns calls `shmproc::init()` first; `Reaper` kills and
//! reaps children on every exit path; every wait is bounded (watchdogs).

mod common;
// Every test takes its turn (`one_at_a_time`): one of them counts this
// process's threads, which another test running beside it would add to.
use common::{join, one_at_a_time, sigkill, unique_name, Reaper, Watchdog, WATCHDOG};

use std::time::{Duration, Instant};

use shmproc::{Error, Event, JoinableQueue, Pipe, Pod, Pool, Process, Queue, Waitable};

type Q = Queue<u64, Pod>;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

// ---- shmproc::wait ---------------------------------------------------------

#[test]
fn wait_returns_exactly_the_ready_indices() {
    let _turn = one_at_a_time();
    let _w = Watchdog::new("wait_returns_exactly_the_ready_indices");
    let qs: Vec<Q> = (0..3).map(|_| Queue::new(4).unwrap()).collect();
    let ev = Event::new().unwrap();
    let (a, b) = Pipe::duplex::<u32>();
    let objs: [&dyn Waitable; 5] = [&qs[0], &qs[1], &qs[2], &ev, &b];
    assert_eq!(shmproc::wait(&objs, Some(Duration::ZERO)).unwrap(), vec![]);
    qs[1].put(&1).unwrap();
    assert_eq!(shmproc::wait(&objs, None).unwrap(), vec![1]);
    ev.set();
    a.send(&5).unwrap();
    assert_eq!(shmproc::wait(&objs, None).unwrap(), vec![1, 3, 4]);
    qs[1].get().unwrap();
    ev.clear();
    assert_eq!(b.recv().unwrap(), 5);
    assert_eq!(shmproc::wait(&objs, Some(Duration::ZERO)).unwrap(), vec![]);
    // Closed counts as ready (a get would not block); so does a gone peer.
    qs[2].close();
    drop(a);
    assert_eq!(shmproc::wait(&objs, None).unwrap(), vec![2, 4]);
}

#[test]
fn timed_out_wait_returns_empty_in_time() {
    let _turn = one_at_a_time();
    let q: Q = Queue::new(1).unwrap();
    let ev = Event::new().unwrap();
    let objs: [&dyn Waitable; 2] = [&q, &ev];
    let t = Duration::from_millis(30);
    let start = Instant::now();
    assert!(shmproc::wait(&objs, Some(t)).unwrap().is_empty());
    let took = start.elapsed();
    assert!(took >= t, "returned after {took:?}, before its timeout");
    assert!(took < WATCHDOG);
}

#[test]
fn wait_wakes_from_another_thread() {
    let _turn = one_at_a_time();
    let _w = Watchdog::new("wait_wakes_from_another_thread");
    let q: Q = Queue::new(4).unwrap();
    let q2 = q.clone();
    let t = std::thread::spawn(move || {
        let objs: [&dyn Waitable; 1] = [&q2];
        shmproc::wait(&objs, None).unwrap()
    });
    q.put(&9).unwrap();
    assert_eq!(t.join().unwrap(), vec![0]);
}

#[test]
fn wait_on_more_objects_than_one_kernel_call_takes() {
    let _turn = one_at_a_time();
    let _w = Watchdog::new("wait_on_more_objects_than_one_kernel_call_takes");
    let qs: Vec<Q> = (0..300).map(|_| Queue::new(1).unwrap()).collect();
    let objs: Vec<&dyn Waitable> = qs.iter().map(|q| q as &dyn Waitable).collect();
    assert!(shmproc::wait(&objs, Some(Duration::from_millis(10)))
        .unwrap()
        .is_empty());
    for &i in &[0usize, 150, 299] {
        let qs2: Vec<Q> = qs.clone();
        let t = std::thread::spawn(move || {
            let objs: Vec<&dyn Waitable> = qs2.iter().map(|q| q as &dyn Waitable).collect();
            shmproc::wait(&objs, None).unwrap()
        });
        qs[i].put(&1).unwrap();
        assert_eq!(t.join().unwrap(), vec![i], "queue {i}");
        qs[i].get().unwrap();
    }
}

fn put_after_event((ev, q, v): (Event, Q, u64)) -> Result<(), String> {
    ev.wait();
    q.put(&v).map_err(|e| e.to_string())
}

fn sleep_forever(_: ()) {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[test]
fn wait_on_queues_and_processes() {
    let _turn = one_at_a_time();
    shmproc::init();
    let _w = Watchdog::new("wait_on_queues_and_processes");
    let mut r = Reaper::new();
    let go = Event::new().unwrap();
    let q: Q = Queue::new(4).unwrap();
    let child = r.watch(Process::spawn(put_after_event, (go.clone(), q.clone(), 7)).unwrap());
    let sleeper = r.watch(Process::spawn(sleep_forever, ()).unwrap());
    let objs: [&dyn Waitable; 3] = [&q, &child, &sleeper];
    assert!(shmproc::wait(&objs, Some(Duration::from_millis(5)))
        .unwrap()
        .is_empty());
    go.set();
    let ready = shmproc::wait(&objs, None).unwrap();
    assert!(ready.contains(&0), "{ready:?}");
    assert_eq!(q.get().unwrap(), 7);
    assert_eq!(join(&child), 0);
    assert_eq!(shmproc::wait(&objs, None).unwrap(), vec![1]);
    // A SIGKILLed child wakes a wait on its Process.
    sigkill(sleeper.pid());
    let only: [&dyn Waitable; 1] = [&sleeper];
    assert_eq!(shmproc::wait(&only, Some(WATCHDOG)).unwrap(), vec![0]);
    assert_eq!(shmproc::wait(&objs, Some(WATCHDOG)).unwrap(), vec![1, 2]);
    assert_eq!(join(&sleeper), -9);
}

// ---- async under tokio -----------------------------------------------------

fn producer((q, n): (Q, u64)) -> Result<(), String> {
    for i in 0..n {
        q.put(&i).map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[test]
fn tokio_get_async_from_a_child_process() {
    let _turn = one_at_a_time();
    shmproc::init();
    let _w = Watchdog::new("tokio_get_async_from_a_child_process");
    let mut r = Reaper::new();
    let q: Q = Queue::new(16).unwrap();
    let child = r.watch(Process::spawn(producer, (q.clone(), 10_000)).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sum = rt.block_on(async {
        let mut sum = 0;
        for i in 0..10_000u64 {
            let v = q.get_async().await.unwrap();
            assert_eq!(v, i);
            sum += v;
        }
        sum
    });
    assert_eq!(sum, (0..10_000).sum::<u64>());
    let code = rt.block_on(child.join_async()).unwrap();
    assert_eq!(code, 0);
}

#[test]
fn tokio_put_async_waits_for_room() {
    let _turn = one_at_a_time();
    let _w = Watchdog::new("tokio_put_async_waits_for_room");
    let q: Q = Queue::new(2).unwrap();
    let q2 = q.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let consumer = tokio::task::spawn_blocking(move || {
            (0..100u64).map(|_| q2.get().unwrap()).collect::<Vec<_>>()
        });
        for i in 0..100u64 {
            q.put_async(&i).await.unwrap();
        }
        assert_eq!(consumer.await.unwrap(), (0..100).collect::<Vec<_>>());
    });
}

fn die_holding_pipe((tx, go): (shmproc::Sender<u32>, Event)) {
    tx.send(&1).unwrap();
    go.wait();
    // SIGKILLed by the parent here, the end still registered.
    sleep_forever(());
}

#[test]
fn tokio_recv_async_sees_a_dead_sender() {
    let _turn = one_at_a_time();
    shmproc::init();
    let _w = Watchdog::new("tokio_recv_async_sees_a_dead_sender");
    let mut r = Reaper::new();
    let (rx, tx) = Pipe::simplex::<u32>();
    let go = Event::new().unwrap();
    let child = r.watch(Process::spawn(die_holding_pipe, (tx, go.clone())).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(rx.recv_async().await.unwrap(), 1);
        go.set();
        sigkill(child.pid());
        // The buffered message is gone, the sender's process is dead: Closed,
        // not a hang (the end was never dropped: only its death tells).
        assert!(matches!(rx.recv_async().await, Err(Error::Closed)));
        assert_eq!(child.join_async().await.unwrap(), -9);
    });
}

fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn tokio_awaits_pool_results_and_events() {
    let _turn = one_at_a_time();
    shmproc::init();
    let _w = Watchdog::new("tokio_awaits_pool_results_and_events");
    let pool = Pool::new(2).unwrap();
    let ev = Event::new().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r: u64 = pool.apply_async(square, 7).await.unwrap();
        assert_eq!(r, 49);
        let all = pool.map_async(square, 0..100u64).await.unwrap();
        assert_eq!(all[99], 99 * 99);
        let ev2 = ev.clone();
        let setter = tokio::task::spawn_blocking(move || ev2.set());
        ev.wait_async().await;
        setter.await.unwrap();
        let jq: JoinableQueue<u64, Pod> = JoinableQueue::new(2).unwrap();
        jq.put(&1).unwrap();
        jq.get().unwrap();
        jq.task_done().unwrap();
        jq.join_async().await.unwrap();
    });
}

// ---- async under smol -------------------------------------------------------

#[test]
fn smol_get_and_put_async_between_processes() {
    let _turn = one_at_a_time();
    shmproc::init();
    let _w = Watchdog::new("smol_get_and_put_async_between_processes");
    let mut r = Reaper::new();
    let q: Q = Queue::new(4).unwrap();
    let child = r.watch(Process::spawn(producer, (q.clone(), 2_000)).unwrap());
    smol::block_on(async {
        for i in 0..2_000u64 {
            assert_eq!(q.get_async().await.unwrap(), i);
        }
        let (a, b) = Pipe::duplex::<String>();
        a.send_async(&"ping".into()).await.unwrap();
        assert_eq!(b.recv_async().await.unwrap(), "ping");
        assert_eq!(child.join_async().await.unwrap(), 0);
    });
}

#[cfg(feature = "stream")]
#[test]
fn streams_yield_every_item_then_end_at_close() {
    let _turn = one_at_a_time();
    use smol::stream::StreamExt;
    shmproc::init();
    let _w = Watchdog::new("streams_yield_every_item_then_end_at_close");
    let mut r = Reaper::new();
    let q: Q = Queue::new(4).unwrap();
    let child = r.watch(Process::spawn(producer, (q.clone(), 500)).unwrap());
    let (rx, tx) = Pipe::simplex::<String>();
    smol::block_on(async {
        let got: Vec<u64> = q.stream().take(500).map(Result::unwrap).collect().await;
        assert_eq!(got, (0..500).collect::<Vec<_>>());
        assert_eq!(child.join_async().await.unwrap(), 0);
        q.close();
        assert!(
            q.stream().next().await.is_none(),
            "a closed, drained queue ends its stream"
        );
        let sender = std::thread::spawn(move || {
            for w in ["a", "b", "c"] {
                tx.send(&w.to_string()).unwrap();
            }
        });
        let words: Vec<String> = rx.stream().map(Result::unwrap).collect().await;
        assert_eq!(
            words,
            ["a", "b", "c"],
            "ends when the sender is gone and all is read"
        );
        sender.join().unwrap();
    });
}

// ---- scale and cancel-safety ----------------------------------------------

#[test]
fn a_thousand_pending_futures_add_at_most_one_thread() {
    let _turn = one_at_a_time();
    let _w = Watchdog::new("a_thousand_pending_futures_add_at_most_one_thread");
    let qs: Vec<Q> = (0..1000).map(|_| Queue::new(1).unwrap()).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let before = threads();
        let mut tasks = Vec::new();
        for q in &qs {
            let q = q.clone();
            tasks.push(tokio::task::spawn(async move { q.get_async().await }));
        }
        // Let every task run until it is pending.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        let during = threads();
        assert!(
            during <= before + 1,
            "{before} threads before, {during} with 1000 pending futures"
        );
        for (i, q) in qs.iter().enumerate() {
            q.put(&(i as u64)).unwrap();
        }
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap().unwrap(), i as u64);
        }
    });
}

/// A tiny xorshift: dropping points that differ run to run, reproducible
/// from the printed seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn dropped_get_futures_lose_and_duplicate_nothing() {
    let _turn = one_at_a_time();
    shmproc::init();
    let _w = Watchdog::new("dropped_get_futures_lose_and_duplicate_nothing");
    let mut r = Reaper::new();
    const N: u64 = 10_000;
    let q: Q = Queue::new(8).unwrap();
    let child = r.watch(Process::spawn(producer, (q.clone(), N)).unwrap());
    let seed = std::process::id() as u64 | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let got = rt.block_on(async {
        let mut got = Vec::with_capacity(N as usize);
        let mut dropped = 0u64;
        while (got.len() as u64) < N {
            // Drop the future after 0 to a few polls, or let it finish.
            let polls = rng.next() % 4;
            let mut fut = Box::pin(q.get_async());
            let mut done = None;
            for _ in 0..polls {
                if let std::task::Poll::Ready(v) = futures_poll(fut.as_mut()) {
                    done = Some(v);
                    break;
                }
                tokio::task::yield_now().await;
            }
            match done {
                Some(v) => got.push(v.unwrap()),
                None if rng.next() % 2 == 0 => {
                    drop(fut);
                    dropped += 1;
                }
                None => got.push(fut.await.unwrap()),
            }
        }
        eprintln!("{dropped} futures dropped");
        got
    });
    assert_eq!(got, (0..N).collect::<Vec<_>>(), "every item once, in order");
    assert!(q.is_empty());
    assert_eq!(join(&child), 0);
}

/// Polls a future once with a no-op waker.
fn futures_poll<F: std::future::Future>(f: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
    f.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
}

#[test]
fn named_queue_waitable_from_an_unrelated_handle() {
    let _turn = one_at_a_time();
    let _w = Watchdog::new("named_queue_waitable_from_an_unrelated_handle");
    let name = unique_name("wait-named");
    let q: Q = Queue::builder().name(&name).maxsize(2).create().unwrap();
    let other: Q = Queue::open(&name).unwrap();
    let t = std::thread::spawn(move || {
        let objs: [&dyn Waitable; 1] = [&other];
        shmproc::wait(&objs, None).unwrap()
    });
    q.put(&1).unwrap();
    assert_eq!(t.join().unwrap(), vec![0]);
}
