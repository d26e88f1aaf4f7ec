//! Unit tests of the public primitives: threads and two mappings of one
//! named segment in one process. Cross-process tests are in `tests/`.

use super::*;
use crate::segment::unique_name;
use crate::Error;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Runs `f` on a thread and fails (instead of hanging) if it takes > 20 s.
fn watchdog<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("watchdog: test blocked for 20 s")
}

#[test]
fn semaphore_never_admits_more_than_value() {
    watchdog(|| {
        let sem = Semaphore::new(2).unwrap();
        let inside = Arc::new(AtomicU32::new(0));
        let ts: Vec<_> = (0..4)
            .map(|_| {
                let (sem, inside) = (sem.clone(), inside.clone());
                thread::spawn(move || {
                    for _ in 0..500 {
                        let _g = sem.acquire().unwrap();
                        let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        assert!(n <= 2, "{n} threads inside a Semaphore(2)");
                        thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert_eq!(sem.value(), 2);
    });
}

#[test]
fn semaphore_timeout_and_bounds() {
    let sem = Semaphore::new(0).unwrap();
    let start = Instant::now();
    let e = sem.acquire_timeout(Duration::from_millis(20)).unwrap_err();
    assert!(matches!(e, Error::Timeout), "{e}");
    assert!(start.elapsed() >= Duration::from_millis(20));
    sem.release().unwrap();
    sem.try_acquire().unwrap().unwrap().forget();
    assert!(sem.try_acquire().unwrap().is_none());
    assert_eq!(sem.value(), 0);

    let b = BoundedSemaphore::new(1).unwrap();
    let e = b.release().unwrap_err();
    assert!(e.to_string().contains("released too many times"), "{e}");
    let g = b.acquire().unwrap();
    assert!(matches!(b.try_acquire(), Ok(None)));
    drop(g);
    assert_eq!(b.value(), 1);
}

#[test]
fn named_semaphore_wakes_other_mapping() {
    watchdog(|| {
        let name = unique_name("sem-named");
        let a = Semaphore::builder().name(&name).value(0).create().unwrap();
        let b = Semaphore::open(&name).unwrap();
        let t = thread::spawn(move || b.acquire().map(SemaphoreGuard::forget).is_ok());
        thread::sleep(Duration::from_millis(20));
        a.release().unwrap();
        assert!(t.join().unwrap());
        assert!(matches!(
            BoundedSemaphore::open(&name),
            Err(Error::Incompatible { .. })
        ));
    });
}

#[test]
fn event_wakes_waiters() {
    watchdog(|| {
        let name = unique_name("event");
        let ev = Event::builder().name(&name).create().unwrap();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let other = Event::open(&name).unwrap();
                thread::spawn(move || other.wait_timeout(Duration::from_secs(10)))
            })
            .collect();
        thread::sleep(Duration::from_millis(20));
        ev.set();
        for w in waiters {
            assert!(w.join().unwrap());
        }
        ev.clear();
        assert!(!ev.wait_timeout(Duration::from_millis(10)));
    });
}

#[test]
fn condition_notify_wakes_waiter() {
    watchdog(|| {
        let cond = Condition::new().unwrap();
        let flag = Arc::new(AtomicU32::new(0));
        let (c2, f2) = (cond.clone(), flag.clone());
        let t = thread::spawn(move || {
            let mut g = c2.acquire().unwrap();
            while f2.load(Ordering::Relaxed) == 0 {
                g = c2.wait(g).unwrap();
            }
            assert!(!g.owner_died());
        });
        thread::sleep(Duration::from_millis(20));
        {
            let _g = cond.acquire().unwrap();
            flag.store(1, Ordering::Relaxed);
            cond.notify(1);
        }
        t.join().unwrap();
    });
}

#[test]
fn condition_rejects_foreign_guard_and_times_out() {
    let cond = Condition::new().unwrap();
    let lock = Lock::new().unwrap();
    let g = lock.acquire().unwrap();
    let e = cond.wait(g).unwrap_err();
    assert!(e.to_string().contains("another lock"), "{e}");
    assert!(!lock.is_locked(), "the foreign guard was dropped");
    let g = cond.acquire().unwrap();
    let (g, notified) = cond.wait_timeout(g, Duration::from_millis(10)).unwrap();
    assert!(!notified);
    drop(g);
}

#[test]
fn condition_wait_for_checks_first_and_after_each_wake_up() {
    watchdog(|| {
        let cond = Condition::new().unwrap();
        let calls = std::cell::Cell::new(0);
        // True at once: no wait at all.
        let g = cond
            .wait_for(cond.acquire().unwrap(), || {
                calls.set(calls.get() + 1);
                true
            })
            .unwrap();
        assert_eq!(calls.get(), 1);
        let (g, held) = cond
            .wait_for_timeout(g, Duration::from_millis(10), || false)
            .unwrap();
        assert!(!held);
        drop(g);
        let n = Arc::new(AtomicU32::new(0));
        let (c2, n2) = (cond.clone(), n.clone());
        let t = thread::spawn(move || {
            for _ in 0..5 {
                let _g = c2.acquire().unwrap();
                n2.fetch_add(1, Ordering::Relaxed);
                c2.notify_all();
            }
        });
        let (g, held) = cond
            .wait_for_timeout(cond.acquire().unwrap(), Duration::from_secs(10), || {
                n.load(Ordering::Relaxed) == 5
            })
            .unwrap();
        assert!(held);
        drop(g);
        t.join().unwrap();
    });
}

#[test]
fn condition_with_lock_shares_the_lock() {
    let lock = Lock::new().unwrap();
    let cond = Condition::with_lock(&lock).unwrap();
    let g = cond.acquire().unwrap();
    assert!(lock.is_locked());
    assert!(lock.try_acquire().unwrap().is_none());
    drop(g);
    assert!(!lock.is_locked());
    // A guard of the lock itself is one the condition waits with.
    let g = lock.acquire().unwrap();
    let (g, notified) = cond.wait_timeout(g, Duration::from_millis(5)).unwrap();
    assert!(!notified && lock.is_locked());
    drop(g);
    // Waiting without holding the condition's lock is refused.
    let other = Lock::new().unwrap();
    let e = cond.wait(other.acquire().unwrap()).unwrap_err();
    assert!(e.to_string().contains("another lock"), "{e}");
    // It travels only with its lock: opening its segment alone is refused.
    use crate::sync::handle::ShmHandle;
    let e = Condition::from_segment(cond.segment().clone()).unwrap_err();
    assert!(matches!(e, Error::Incompatible { .. }), "{e}");
}

#[test]
fn condition_with_rlock_waits_at_any_depth() {
    watchdog(|| {
        let lock = RLock::new().unwrap();
        let cond = Condition::with_rlock(&lock).unwrap();
        let outer = cond.acquire().unwrap();
        let inner = lock.acquire().unwrap();
        assert_eq!(lock.depth(), 2);
        let l2 = lock.clone();
        let (c2, flag) = (cond.clone(), Arc::new(AtomicU32::new(0)));
        let f2 = flag.clone();
        let t = thread::spawn(move || {
            let g = l2.acquire().unwrap(); // free while the waiter waits
            f2.store(1, Ordering::Relaxed);
            c2.notify_all();
            drop(g);
        });
        let inner = cond
            .wait_for(inner, || flag.load(Ordering::Relaxed) == 1)
            .unwrap();
        assert_eq!(lock.depth(), 2, "both levels restored");
        assert!(lock.is_owned());
        drop(inner);
        assert_eq!(lock.depth(), 1);
        drop(outer);
        assert_eq!(lock.depth(), 0);
        t.join().unwrap();
    });
}

#[test]
fn barrier_releases_all_parties_with_distinct_indexes() {
    watchdog(|| {
        let b = Barrier::new(3).unwrap();
        for _round in 0..3 {
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let b = b.clone();
                    thread::spawn(move || b.wait().unwrap())
                })
                .collect();
            let mut idx = vec![b.wait().unwrap()];
            idx.extend(ts.into_iter().map(|t| t.join().unwrap()));
            idx.sort_unstable();
            assert_eq!(idx, [0, 1, 2]);
        }
        // Python's semantics: a wait that times out breaks the barrier.
        let e = b.wait_timeout(Duration::from_millis(10)).unwrap_err();
        assert!(matches!(e, Error::BrokenBarrier), "{e}");
        assert!(b.broken());
        assert_eq!(b.n_waiting(), 0);
        assert!(matches!(b.wait(), Err(Error::BrokenBarrier)));
        b.reset();
        assert!(!b.broken());
        assert!(Barrier::new(0).is_err());
    });
}

static ROUNDS: AtomicU32 = AtomicU32::new(0);

fn count_round() {
    ROUNDS.fetch_add(1, Ordering::Relaxed);
}

#[test]
fn barrier_action_runs_once_per_round_before_the_release() {
    watchdog(|| {
        let b = Barrier::builder()
            .parties(3)
            .action(count_round)
            .create()
            .unwrap();
        for round in 1..=20 {
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let b = b.clone();
                    thread::spawn(move || {
                        b.wait().unwrap();
                        ROUNDS.load(Ordering::Relaxed)
                    })
                })
                .collect();
            b.wait().unwrap();
            assert_eq!(ROUNDS.load(Ordering::Relaxed), round);
            for t in ts {
                assert_eq!(t.join().unwrap(), round, "released after the action");
            }
        }
    });
}

#[test]
fn barrier_refuses_a_capturing_action() {
    let n = 3;
    let e = Barrier::builder()
        .parties(2)
        .action(move || assert_eq!(n, 3))
        .create()
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    assert!(e.to_string().contains("non-capturing"), "{e}");
}

#[test]
fn barrier_abort_and_reset_wake_the_waiters_broken() {
    watchdog(|| {
        let b = Barrier::new(3).unwrap();
        for how in ["abort", "reset"] {
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let b = b.clone();
                    thread::spawn(move || b.wait())
                })
                .collect();
            while b.n_waiting() < 2 {
                thread::yield_now();
            }
            if how == "abort" {
                b.abort();
            } else {
                b.reset();
            }
            for t in ts {
                let r = t.join().unwrap();
                assert!(matches!(r, Err(Error::BrokenBarrier)), "{how}: {r:?}");
            }
            assert_eq!(b.broken(), how == "abort");
            b.reset();
            // Usable again: a full round passes.
            let ts: Vec<_> = (0..2)
                .map(|_| {
                    let b = b.clone();
                    thread::spawn(move || b.wait().unwrap())
                })
                .collect();
            b.wait().unwrap();
            for t in ts {
                t.join().unwrap();
            }
        }
    });
}

#[test]
fn barrier_default_timeout_is_shared_and_breaks_it() {
    let name = unique_name("barrier-timeout");
    let b = Barrier::builder()
        .name(&name)
        .parties(2)
        .timeout(Duration::from_millis(10))
        .create()
        .unwrap();
    let other = Barrier::open(&name).unwrap();
    assert_eq!(other.timeout(), Some(Duration::from_millis(10)));
    let start = Instant::now();
    assert!(matches!(other.wait(), Err(Error::BrokenBarrier)));
    assert!(start.elapsed() >= Duration::from_millis(10));
    assert!(b.broken());
}

/// A named barrier segment with `params` and `payload_len` bytes, as a peer
/// may have left it.
fn raw_barrier_segment(payload_len: u64, params: [u64; 4]) -> (String, crate::segment::Segment) {
    use crate::segment::{Kind, Placement, Segment, Spec, TypeFingerprint};
    let name = unique_name("barrier-corrupt");
    let spec = Spec {
        kind: Kind::Barrier,
        ty: TypeFingerprint::none(),
        payload_len,
        params,
    };
    let place = Placement {
        name: Some(name.clone()),
        persist: false,
    };
    let seg = Segment::create(&spec, &place, |_| Ok(())).unwrap();
    (name, seg)
}

#[test]
fn corrupt_barriers_are_rejected_on_open() {
    // No parties; parties but no room for their records.
    for (len, parties) in [(8, 0), (64, 2)] {
        let (name, _seg) = raw_barrier_segment(len, [parties, 0, 0, 0]);
        let e = Barrier::open(&name).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    }

    let name = unique_name("barrier-seal");
    let b = Barrier::builder()
        .name(&name)
        .parties(1)
        .action(count_round)
        .create()
        .unwrap();
    // A peer scribbles on the action's offset: the seal no longer matches.
    use crate::sync::handle::ShmHandle;
    let seg = b.segment();
    // Payload offset 16 is `action.offset` (after the 8-byte word and 8
    // reserved bytes).
    let offset = seg.view::<std::sync::atomic::AtomicU64>(16).unwrap();
    offset.fetch_add(64, Ordering::Relaxed);
    let e = Barrier::open(&name).unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
}

#[test]
fn counters_count_sleeps_and_recoveries_not_fast_paths() {
    use crate::segment::counters::{BLOCKED, CONDITION_WAITS, OWNER_DIED};
    use crate::sync::handle::ShmHandle;
    let lock = Lock::new().unwrap();
    let c = |l: &Lock| l.segment().counters();
    for _ in 0..1000 {
        drop(lock.acquire().unwrap());
        drop(lock.try_acquire().unwrap().unwrap());
    }
    assert_eq!(c(&lock)[..2], [0, 0], "uncontended acquires count nothing");
    let held = lock.acquire().unwrap();
    assert!(lock.try_acquire().unwrap().is_none());
    assert_eq!(c(&lock)[BLOCKED], 0, "try_acquire never sleeps");
    let l2 = lock.clone();
    watchdog(move || assert!(l2.acquire_timeout(Duration::from_millis(30)).is_err()));
    assert_eq!(
        c(&lock)[BLOCKED],
        1,
        "one timed-out acquire, many sleep slices"
    );
    drop(held);
    // A thread that exits holding the lock: the next acquire recovers it.
    let l2 = lock.clone();
    thread::spawn(move || std::mem::forget(l2.acquire().unwrap()))
        .join()
        .unwrap();
    let l2 = lock.clone();
    watchdog(move || assert!(l2.acquire().unwrap().owner_died()));
    assert_eq!(c(&lock)[OWNER_DIED], 1);

    let ev = Event::new().unwrap();
    assert!(!ev.wait_timeout(Duration::from_millis(5)));
    ev.set();
    ev.wait();
    assert_eq!(
        ev.segment().counters()[BLOCKED],
        1,
        "only the wait that slept"
    );

    let cond = Condition::new().unwrap();
    let g = cond.acquire().unwrap();
    let (g, notified) = cond.wait_timeout(g, Duration::from_millis(5)).unwrap();
    assert!(!notified);
    drop(g);
    assert_eq!(cond.segment().counters()[CONDITION_WAITS], 1);
}
