//! Queue tests in crossbeam's vocabulary, single process: threads and two
//! mappings of one named segment. Cross-process cases: `queue_processes.rs`.

mod common;
use common::{wait_for_counter, wait_until, watchdog, WATCHDOG};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::unique_name;
use shmproc::{Error, JoinableQueue, Pod, Queue};

#[test]
fn smoke() {
    let q: Queue<u32, Pod> = Queue::new(4).unwrap();
    q.put(&7).unwrap();
    assert_eq!(q.try_get().unwrap(), 7);
    assert!(matches!(q.try_get(), Err(Error::Empty)));
}

#[test]
fn smoke_serde_and_bytes() {
    let q: Queue<(String, Vec<u16>)> = Queue::new(2).unwrap();
    q.put(&("hi".into(), vec![1, 2, 3])).unwrap();
    assert_eq!(q.get().unwrap(), ("hi".to_string(), vec![1, 2, 3]));
    q.put_bytes(b"").unwrap();
    q.put_bytes(b"raw frame").unwrap();
    assert_eq!(q.get_bytes().unwrap(), b"");
    assert_eq!(q.get_bytes().unwrap(), b"raw frame");
}

#[test]
fn capacity() {
    for cap in 1..10 {
        let q: Queue<u8, Pod> = Queue::new(cap).unwrap();
        assert_eq!(q.capacity(), cap);
    }
    assert!(matches!(
        Queue::<u8, Pod>::new(0),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn len_empty_full() {
    let q: Queue<u64, Pod> = Queue::new(2).unwrap();
    assert_eq!(q.len(), 0);
    assert!(q.is_empty());
    assert!(!q.is_full());
    q.put(&1).unwrap();
    assert_eq!(q.len(), 1);
    assert!(!q.is_empty());
    assert!(!q.is_full());
    q.put(&2).unwrap();
    assert_eq!(q.len(), 2);
    assert!(q.is_full());
    assert!(matches!(q.try_put(&3), Err(Error::Full)));
    assert!(matches!(
        q.put_timeout(&3, Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    q.get().unwrap();
    assert_eq!(q.len(), 1);
    assert!(!q.is_full());
    q.get().unwrap();
    assert!(q.is_empty());
    assert!(matches!(
        q.get_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
}

#[test]
fn capacity_one_wraps_many_laps() {
    let q: Queue<u64, Pod> = Queue::new(1).unwrap();
    for i in 0..10_000u64 {
        q.try_put(&i).unwrap();
        assert!(matches!(q.try_put(&i), Err(Error::Full)));
        assert_eq!(q.try_get().unwrap(), i);
    }
}

#[test]
fn spsc() {
    const N: u64 = 200_000;
    watchdog(60, || {
        let q: Queue<u64, Pod> = Queue::new(3).unwrap();
        let q2 = q.clone();
        let t = thread::spawn(move || {
            for i in 0..N {
                assert_eq!(q2.get().unwrap(), i);
            }
            assert!(q2.try_get().is_err());
        });
        for i in 0..N {
            q.put(&i).unwrap();
        }
        t.join().unwrap();
    });
}

#[test]
fn mpmc() {
    const N: usize = 50_000;
    const T: usize = 4;
    watchdog(60, || {
        let q: Queue<u64, Pod> = Queue::new(3).unwrap();
        let seen: Arc<Vec<AtomicUsize>> = Arc::new((0..N).map(|_| AtomicUsize::new(0)).collect());
        let mut hs = vec![];
        for _ in 0..T {
            let qc = q.clone();
            let seen = seen.clone();
            hs.push(thread::spawn(move || {
                for _ in 0..N {
                    let n = qc.get().unwrap() as usize;
                    seen[n].fetch_add(1, Ordering::Relaxed);
                }
            }));
            let q = q.clone();
            hs.push(thread::spawn(move || {
                for i in 0..N {
                    q.put(&(i as u64)).unwrap();
                }
            }));
        }
        for h in hs {
            h.join().unwrap();
        }
        for c in seen.iter() {
            assert_eq!(c.load(Ordering::Relaxed), T);
        }
    });
}

#[test]
fn per_producer_order() {
    const N: u64 = 20_000;
    watchdog(60, || {
        let q: Queue<[u64; 2], Pod> = Queue::new(8).unwrap();
        let mut hs = vec![];
        for p in 0..3u64 {
            let q = q.clone();
            hs.push(thread::spawn(move || {
                for i in 0..N {
                    q.put(&[p, i]).unwrap();
                }
            }));
        }
        let mut next = [0u64; 3];
        for _ in 0..3 * N {
            let [p, i] = q.get().unwrap();
            assert_eq!(next[p as usize], i, "producer {p} out of order");
            next[p as usize] += 1;
        }
        for h in hs {
            h.join().unwrap();
        }
    });
}

#[test]
fn drops() {
    // Items are values in shared memory: dropping queues with items left
    // frees nothing twice and leaks nothing in the process.
    let q: Queue<Vec<String>> = Queue::new(4).unwrap();
    q.put(&vec!["a".into(); 3]).unwrap();
    q.put(&vec![]).unwrap();
    let q2 = q.clone();
    drop(q);
    assert_eq!(q2.get().unwrap(), vec!["a".to_string(); 3]);
    drop(q2);
}

#[test]
fn linearizable() {
    const N: usize = 20_000;
    watchdog(60, || {
        let q: Queue<u32, Pod> = Queue::new(4).unwrap();
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let q = q.clone();
                thread::spawn(move || {
                    for _ in 0..N {
                        // Never more than 4 in flight: each thread puts then gets.
                        q.put(&1).unwrap();
                        q.get().unwrap();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert!(q.is_empty());
    });
}

#[test]
fn disconnect_close_drains_then_closed() {
    watchdog(30, || {
        let q: Queue<u64, Pod> = Queue::new(4).unwrap();
        q.put(&1).unwrap();
        q.put(&2).unwrap();
        q.close();
        assert!(q.is_closed());
        assert!(matches!(q.put(&3), Err(Error::Closed)));
        assert_eq!(q.get().unwrap(), 1);
        assert_eq!(q.get().unwrap(), 2);
        assert!(matches!(q.get(), Err(Error::Closed)));
        assert!(matches!(q.try_get(), Err(Error::Closed)));
    });
}

#[test]
fn disconnect_close_wakes_sleepers() {
    watchdog(30, || {
        // The queues' own counters say when the getter (putter) sleeps.
        let name = unique_name("q-close-getter");
        let q: Queue<u64, Pod> = Queue::builder().name(&name).maxsize(1).create().unwrap();
        let q2 = q.clone();
        let getter = thread::spawn(move || q2.get());
        wait_for_counter(&name, "get sleeps (empty)", 1);
        q.close();
        assert!(matches!(getter.join().unwrap(), Err(Error::Closed)));

        let name = unique_name("q-close-putter");
        let q: Queue<u64, Pod> = Queue::builder().name(&name).maxsize(1).create().unwrap();
        q.put(&0).unwrap();
        let q2 = q.clone();
        let putter = thread::spawn(move || q2.put(&1));
        wait_for_counter(&name, "put sleeps (full)", 1);
        q.close();
        assert!(matches!(putter.join().unwrap(), Err(Error::Closed)));
    });
}

#[test]
fn batch_put_get() {
    watchdog(30, || {
        let q: Queue<u64, Pod> = Queue::new(16).unwrap();
        let q2 = q.clone();
        let t = thread::spawn(move || {
            let items: Vec<u64> = (0..10_000).collect();
            for c in items.chunks(37) {
                q2.put_many(c).unwrap();
            }
        });
        let mut got = Vec::new();
        while got.len() < 10_000 {
            q.get_many(&mut got, 64).unwrap();
        }
        t.join().unwrap();
        assert_eq!(got, (0..10_000).collect::<Vec<_>>());
    });
}

#[test]
fn batch_mixes_inline_and_bulk_in_order() {
    watchdog(60, || {
        let q: Queue<Vec<u8>> = Queue::builder()
            .maxsize(8)
            .bulk_size(64 * 1024)
            .create()
            .unwrap();
        let q2 = q.clone();
        let items: Vec<Vec<u8>> = (0..200u32)
            .map(|i| vec![i as u8; if i % 17 == 0 { 5000 } else { (i % 50) as usize }])
            .collect();
        let sent = items.clone();
        let t = thread::spawn(move || {
            for c in sent.chunks(23) {
                q2.put_many(c).unwrap();
            }
        });
        let mut got = Vec::new();
        while got.len() < items.len() {
            let n = q.get_many(&mut got, 40).unwrap();
            assert!(n >= 1);
        }
        t.join().unwrap();
        assert_eq!(got, items);
    });
}

#[test]
fn large_messages_through_small_ring() {
    watchdog(120, || {
        let q: Queue<Vec<u8>> = Queue::builder()
            .maxsize(2)
            .bulk_size(64 * 1024)
            .create()
            .unwrap();
        let q2 = q.clone();
        let sizes = [
            0usize,
            1,
            239,
            240,
            241,
            5000,
            64 * 1024,
            64 * 1024 + 7,
            3 << 20,
        ];
        let t = thread::spawn(move || {
            for (k, s) in sizes.iter().enumerate() {
                let v: Vec<u8> = (0..*s).map(|i| (i * 31 + k) as u8).collect();
                q2.put(&v).unwrap();
                q2.put(&vec![k as u8]).unwrap();
            }
        });
        for (k, s) in sizes.iter().enumerate() {
            let v = q.get().unwrap();
            assert_eq!(v.len(), *s);
            assert!(v.iter().enumerate().all(|(i, b)| *b == (i * 31 + k) as u8));
            assert_eq!(q.get().unwrap(), vec![k as u8]);
        }
        t.join().unwrap();
    });
}

#[test]
fn large_64_mib_message_intact() {
    watchdog(120, || {
        let q: Queue<u8, Pod> = Queue::new(4).unwrap();
        let msg: Vec<u8> = (0..64usize << 20).map(|i| (i ^ (i >> 13)) as u8).collect();
        let sum: u64 = msg.iter().map(|b| u64::from(*b)).sum();
        let q2 = q.clone();
        let t = thread::spawn(move || q2.get_bytes().unwrap());
        q.put_bytes(&msg).unwrap();
        let got = t.join().unwrap();
        assert_eq!(got.len(), msg.len());
        assert_eq!(got.iter().map(|b| u64::from(*b)).sum::<u64>(), sum);
        assert!(got == msg);
    });
}

#[test]
fn large_messages_mpmc() {
    watchdog(120, || {
        let q: Queue<Vec<u32>> = Queue::builder()
            .maxsize(4)
            .bulk_size(4096)
            .create()
            .unwrap();
        let mut hs = vec![];
        for p in 0..3u32 {
            let q = q.clone();
            hs.push(thread::spawn(move || {
                for i in 0..200u32 {
                    let n = ((i * 7919 + p) % 3000) as usize;
                    q.put(&vec![p * 1_000_000 + i; n]).unwrap();
                }
            }));
        }
        let total = Arc::new(AtomicUsize::new(0));
        let mut cs = vec![];
        for _ in 0..3 {
            let q = q.clone();
            let total = total.clone();
            cs.push(thread::spawn(move || loop {
                // Until the close after the last put (the watchdog bounds it).
                match q.get() {
                    Ok(v) => {
                        if let Some(x) = v.first() {
                            assert!(v.iter().all(|y| y == x));
                            let (p, i) = (x / 1_000_000, x % 1_000_000);
                            assert_eq!(v.len(), ((i * 7919 + p) % 3000) as usize);
                        }
                        total.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(Error::Closed) => return,
                    Err(e) => panic!("{e}"),
                }
            }));
        }
        for h in hs {
            h.join().unwrap();
        }
        q.close();
        for c in cs {
            c.join().unwrap();
        }
        assert_eq!(total.load(Ordering::Relaxed), 600);
    });
}

#[test]
fn message_too_large_only_with_a_limit() {
    let q: Queue<u8, Pod> = Queue::builder().maxsize(2).bulk_size(0).create().unwrap();
    assert!(matches!(
        q.put_bytes(&[0; 100]),
        Err(Error::MessageTooLarge { size: 100, max: 16 })
    ));
    let q: Queue<u8, Pod> = Queue::builder()
        .maxsize(2)
        .max_message(1000)
        .create()
        .unwrap();
    assert!(matches!(
        q.put_bytes(&[0; 1001]),
        Err(Error::MessageTooLarge {
            size: 1001,
            max: 1000
        })
    ));
}

#[test]
fn two_mappings_of_a_named_queue() {
    watchdog(30, || {
        let name = unique_name("q-two-maps");
        let a: Queue<String> = Queue::builder().name(&name).maxsize(4).create().unwrap();
        let b: Queue<String> = Queue::open(&name).unwrap();
        let t = thread::spawn(move || {
            for i in 0..1000 {
                b.put(&format!("m{i}")).unwrap();
            }
        });
        for i in 0..1000 {
            assert_eq!(a.get().unwrap(), format!("m{i}"));
        }
        t.join().unwrap();
        assert!(matches!(
            Queue::<u64, Pod>::open(&name),
            Err(Error::Incompatible { .. })
        ));
        drop(a);
        assert!(
            Queue::<String>::open(&name).is_err(),
            "creator's drop unlinks"
        );
    });
}

#[test]
fn joinable_task_done_and_join() {
    watchdog(30, || {
        let q: JoinableQueue<u32> = JoinableQueue::new(8).unwrap();
        for i in 0..5 {
            q.put(&i).unwrap();
        }
        assert_eq!(q.unfinished(), 5);
        assert!(matches!(
            q.join_timeout(Duration::from_millis(20)),
            Err(Error::Timeout)
        ));
        // A consumer finishes four tasks, then the fifth when told to.
        let (go, last) = std::sync::mpsc::channel::<()>();
        let q2 = q.clone();
        let t = thread::spawn(move || {
            for i in 0..5 {
                q2.get().unwrap();
                if i == 4 {
                    last.recv().unwrap();
                }
                q2.task_done().unwrap();
            }
        });
        wait_until("four tasks done", || q.unfinished() == 1);
        // One task unfinished: join still waits.
        assert!(matches!(
            q.join_timeout(Duration::from_millis(20)),
            Err(Error::Timeout)
        ));
        go.send(()).unwrap();
        q.join_timeout(WATCHDOG).unwrap();
        assert_eq!(q.unfinished(), 0);
        t.join().unwrap();
        assert!(matches!(q.task_done(), Err(Error::InvalidArgument { .. })));
    });
}

#[test]
fn handles_are_clone_send_sync_serde() {
    fn check<T: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned>() {}
    check::<Queue<String>>();
    check::<Queue<u64, Pod>>();
    check::<JoinableQueue<Vec<u8>>>();
    check::<shmproc::Connection<String>>();
    check::<shmproc::Receiver<u8>>();
    check::<shmproc::Sender<u8>>();
}

#[test]
fn anonymous_handle_does_not_serialize_outside_a_launch() {
    let q: Queue<u8, Pod> = Queue::new(1).unwrap();
    assert!(
        postcard::to_allocvec(&q).is_err(),
        "an anonymous queue must not serialize here"
    );
    let name = unique_name("q-ser");
    let named: Queue<u8, Pod> = Queue::builder().name(&name).create().unwrap();
    let bytes = postcard::to_allocvec(&named).unwrap();
    let back: Queue<u8, Pod> = postcard::from_bytes(&bytes).unwrap();
    back.put(&3).unwrap();
    assert_eq!(named.get().unwrap(), 3);
}
