//! Pipe tests, single process (threads). Cross-process: `pipe_processes.rs`.

mod common;
use common::{counter, wait_for_counter, wait_until, watchdog, WATCHDOG};

use std::thread;
use std::time::Duration;

use shmproc::{Error, Pipe, Pod};

#[test]
fn smoke_duplex() {
    let (a, b) = Pipe::duplex::<String>();
    a.send(&"ping".into()).unwrap();
    assert_eq!(b.recv().unwrap(), "ping");
    b.send(&"pong".into()).unwrap();
    assert_eq!(a.recv().unwrap(), "pong");
}

#[test]
fn smoke_simplex_and_bytes() {
    let (rx, tx) = Pipe::simplex::<u32>();
    tx.send(&5).unwrap();
    assert_eq!(rx.recv().unwrap(), 5);
    tx.send_bytes(b"frame").unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(rx.recv_bytes_into(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"frame");
    tx.send_bytes(b"0123456789").unwrap();
    tx.send_bytes(&[]).unwrap();
    let mut small = [0u8; 4];
    assert!(matches!(
        rx.recv_bytes_into(&mut small),
        Err(Error::MessageTooLarge { size: 10, max: 4 })
    ));
    // Nothing is lost: the message stays first, for any kind of receive.
    assert!(rx.poll(Duration::ZERO));
    assert!(matches!(
        rx.recv_bytes_into(&mut small),
        Err(Error::MessageTooLarge { size: 10, max: 4 })
    ));
    assert_eq!(rx.recv_bytes_into(&mut buf).unwrap(), 10);
    assert_eq!(&buf[..10], b"0123456789");
    assert_eq!(rx.recv_bytes().unwrap(), b"");
}

#[test]
fn too_small_buffer_keeps_the_message_for_the_next_receive() {
    watchdog(30, too_small_buffer_case);
}

fn too_small_buffer_case() {
    let (a, b) = Pipe::duplex::<String>();
    // An item: a too-small buffer, then a typed receive gets it whole.
    a.send(&"a string of some length".into()).unwrap();
    let mut tiny = [0u8; 3];
    assert!(matches!(
        b.recv_bytes_into(&mut tiny),
        Err(Error::MessageTooLarge { max: 3, .. })
    ));
    assert_eq!(b.recv().unwrap(), "a string of some length");
    // A message larger than a slot (the bulk stream), then one behind it:
    // order is kept.
    let big: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
    // From another thread: a message larger than the stream area waits for
    // its reader.
    let sender = {
        let (a, big) = (a.clone(), big.clone());
        thread::spawn(move || {
            a.send_bytes(&big).unwrap();
            a.send(&"next".into()).unwrap();
        })
    };
    let mut buf = vec![0u8; 1000];
    assert!(matches!(
        b.recv_bytes_into(&mut buf),
        Err(Error::MessageTooLarge {
            size: 300_000,
            max: 1000
        })
    ));
    assert_eq!(b.recv_bytes().unwrap(), big);
    assert_eq!(b.recv().unwrap(), "next");
    sender.join().unwrap();
    assert!(matches!(b.try_recv(), Err(Error::Empty)));
}

#[test]
fn poll_and_timeout() {
    watchdog(30, || {
        let name = common::unique_name("pipe-poll");
        let (a, b) = Pipe::builder()
            .name(&name)
            .duplex::<u8, shmproc::Serde>()
            .unwrap();
        assert!(!b.poll(Duration::from_millis(10)));
        assert!(matches!(
            b.recv_timeout(Duration::from_millis(10)),
            Err(Error::Timeout)
        ));
        assert!(matches!(b.try_recv(), Err(Error::Empty)));
        a.send(&1).unwrap();
        assert!(b.poll(Duration::ZERO));
        assert_eq!(b.recv().unwrap(), 1);
        // A poll that is asleep when the message comes: the ring's gauge of
        // getters asleep (which `poll` joins) tells the sender when.
        let t = thread::spawn(move || {
            wait_until("the poll slept", || {
                counter(&format!("{name}.ab"), "getters asleep") >= 1
            });
            a.send(&2).unwrap();
        });
        assert!(b.poll(WATCHDOG));
        assert_eq!(b.recv().unwrap(), 2);
        t.join().unwrap();
    });
}

#[test]
fn disconnect_drop_gives_buffered_then_closed() {
    watchdog(30, || {
        let (a, b) = Pipe::duplex::<u32>();
        a.send(&1).unwrap();
        a.send(&2).unwrap();
        let a2 = a.clone();
        drop(a);
        a2.send(&3).unwrap(); // a clone keeps the end open
        drop(a2);
        assert_eq!(b.recv().unwrap(), 1);
        assert_eq!(b.recv().unwrap(), 2);
        assert_eq!(b.recv().unwrap(), 3);
        assert!(matches!(b.recv(), Err(Error::Closed)));
        assert!(b.poll(Duration::ZERO), "poll reports EOF as ready");
        assert!(matches!(b.send(&4), Err(Error::Closed)));
    });
}

#[test]
fn disconnect_wakes_a_blocked_receiver_and_sender() {
    watchdog(30, || {
        // The pipe's own counters say when the receiver (sender) sleeps.
        let name = common::unique_name("pipe-recv-wakes");
        let (a, b) = Pipe::builder()
            .name(&name)
            .duplex::<u32, shmproc::Serde>()
            .unwrap();
        let t = thread::spawn(move || b.recv());
        wait_for_counter(&format!("{name}.ab"), "get sleeps (empty)", 1);
        drop(a);
        assert!(matches!(t.join().unwrap(), Err(Error::Closed)));

        let name = common::unique_name("pipe-send-wakes");
        let (rx, tx) = Pipe::builder()
            .name(&name)
            .capacity(1)
            .simplex::<u32, Pod>()
            .unwrap();
        tx.send(&1).unwrap();
        let t = thread::spawn(move || tx.send(&2));
        wait_for_counter(&format!("{name}.ab"), "put sleeps (full)", 1);
        drop(rx);
        assert!(matches!(t.join().unwrap(), Err(Error::Closed)));
    });
}

#[test]
fn spsc_ping_pong() {
    watchdog(60, || {
        let (a, b) = Pipe::builder().duplex::<u64, Pod>().unwrap();
        let t = thread::spawn(move || {
            while let Ok(x) = b.recv() {
                b.send(&(x + 1)).unwrap();
            }
        });
        let mut x = 0;
        for _ in 0..10_000 {
            a.send(&x).unwrap();
            x = a.recv().unwrap();
        }
        assert_eq!(x, 10_000);
        drop(a);
        t.join().unwrap();
    });
}

#[test]
fn large_message_through_pipe() {
    watchdog(60, || {
        let (rx, tx) = Pipe::builder()
            .bulk_size(16 * 1024)
            .simplex::<Vec<u8>, shmproc::Serde>()
            .unwrap();
        let msg: Vec<u8> = (0..(8usize << 20)).map(|i| (i % 251) as u8).collect();
        let m2 = msg.clone();
        let t = thread::spawn(move || tx.send(&m2).unwrap());
        assert!(rx.recv().unwrap() == msg);
        t.join().unwrap();
    });
}

#[test]
fn wrong_end_is_an_error() {
    let (rx, tx) = Pipe::simplex::<u8>();
    let json_like = postcard::to_allocvec(&rx);
    // Anonymous handles do not serialize outside a launch.
    assert!(json_like.is_err());
    drop(tx);
    assert!(matches!(rx.recv(), Err(Error::Closed)));
}
