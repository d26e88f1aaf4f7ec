use super::*;
use crate::segment::unique_name;
use crate::sync::atomic::Ordering;
use crate::sync::RLock;

#[test]
fn smoke() {
    let l = Lock::new().unwrap();
    let g = l.acquire().unwrap();
    assert!(!g.owner_died());
    assert!(l.is_locked());
    assert!(matches!(l.try_acquire(), Ok(None)), "held by this thread");
    let e = l.acquire().unwrap_err();
    assert!(e.to_string().contains("not reentrant"), "{e}");
    drop(g);
    assert!(!l.is_locked());
    l.try_acquire().unwrap().unwrap().release().unwrap();
}

#[test]
fn named_open_shares_state() {
    let name = unique_name("lock-named");
    let a = Lock::builder().name(&name).create().unwrap();
    let b = Lock::open(&name).unwrap();
    assert_eq!(b.name(), Some(name.as_str()));
    let g = a.acquire().unwrap();
    assert!(b.is_locked());
    // Same thread through the other mapping: refused, not a deadlock.
    assert!(matches!(b.acquire(), Err(Error::InvalidArgument { .. })));
    let b2 = b.clone();
    let timed_out = std::thread::spawn(move || {
        matches!(
            b2.acquire_timeout(Duration::from_millis(10)),
            Err(Error::Timeout)
        )
    });
    assert!(timed_out.join().unwrap());
    drop(g);
    drop(b.acquire().unwrap());
    let e = RLock::open(&name).unwrap_err();
    assert!(matches!(e, Error::Incompatible { .. }), "{e}");
}

#[test]
fn thread_dying_holding_lock_is_recovered() {
    let l = Lock::new().unwrap();
    let l2 = l.clone();
    std::thread::spawn(move || std::mem::forget(l2.acquire().unwrap()))
        .join()
        .unwrap();
    let start = Instant::now();
    let g = l.acquire_timeout(Duration::from_secs(10)).unwrap();
    assert!(g.owner_died());
    assert!(start.elapsed() < Duration::from_secs(10));
    drop(g);
    assert!(!l.acquire().unwrap().owner_died());
}

#[test]
fn try_acquire_recovers_dead_thread() {
    let l = Lock::new().unwrap();
    let l2 = l.clone();
    std::thread::spawn(move || std::mem::forget(l2.acquire().unwrap()))
        .join()
        .unwrap();
    assert!(l.try_acquire().unwrap().unwrap().owner_died());
}

#[test]
fn threads_count_exactly() {
    let l = Lock::new().unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ts: Vec<_> = (0..4)
        .map(|_| {
            let (l, count) = (l.clone(), count.clone());
            std::thread::spawn(move || {
                for _ in 0..10_000 {
                    let _g = l.acquire().unwrap();
                    // Relaxed load+store: only the lock makes the sum exact.
                    let v = count.load(Ordering::Relaxed);
                    count.store(v + 1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in ts {
        t.join().unwrap();
    }
    assert_eq!(count.load(Ordering::Relaxed), 40_000);
}

#[test]
fn rlock_reenters_and_refuses_others() {
    let l = RLock::new().unwrap();
    let a = l.acquire().unwrap();
    let b = l.try_acquire().unwrap().unwrap();
    assert_eq!(l.depth(), 2);
    assert!(l.is_owned());
    let l2 = l.clone();
    let other = std::thread::spawn(move || {
        matches!(
            l2.acquire_timeout(Duration::from_millis(10)),
            Err(Error::Timeout)
        ) && matches!(l2.try_acquire(), Ok(None))
    });
    assert!(other.join().unwrap());
    b.release().unwrap();
    assert_eq!(l.depth(), 1);
    drop(a);
    assert_eq!(l.depth(), 0);
    assert!(!l.is_owned());
}

#[test]
fn rlock_recovers_from_dead_thread() {
    let l = RLock::new().unwrap();
    let l2 = l.clone();
    std::thread::spawn(move || {
        let g = l2.acquire().unwrap();
        std::mem::forget(l2.acquire().unwrap());
        std::mem::forget(g);
    })
    .join()
    .unwrap();
    let g = l.acquire().unwrap();
    assert!(g.owner_died());
    assert_eq!(l.depth(), 1, "a take-over resets the depth");
    drop(g);
    assert_eq!(l.depth(), 0);
}

#[test]
fn serde_roundtrip_named() {
    let name = unique_name("lock-serde");
    let l = Lock::builder().name(&name).create().unwrap();
    let bytes = postcard::to_allocvec(&l).unwrap();
    let back: Lock = postcard::from_bytes(&bytes).unwrap();
    let g = back.acquire().unwrap();
    assert!(l.is_locked());
    drop(g);
    // An anonymous lock cannot travel outside a launch.
    let anon = Lock::new().unwrap();
    assert!(postcard::to_allocvec(&anon).is_err());
}
