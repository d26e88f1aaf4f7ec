//! Unit tests of the byte ring and of length-prefixed messages over it, on
//! a real (anonymous) segment.

use std::time::{Duration, Instant};

use super::*;
use crate::segment::{Kind, Placement, Segment, Spec, TypeFingerprint};
use crate::sync::park::Futex;

/// A segment holding one ring of `cap` bytes: control at 0, bytes at 384.
fn segment(cap: u64) -> Segment {
    let spec = Spec {
        kind: Kind::Pool,
        ty: TypeFingerprint::none(),
        payload_len: 384 + cap,
        params: [0; 4],
    };
    Segment::create(&spec, &Placement::default(), |_| Ok(())).unwrap()
}

fn ring(seg: &Segment, cap: u64) -> ByteRing {
    ByteRing::in_segment(seg, 0, None, 384, cap).unwrap()
}

/// Two ends of one message ring (as two processes would map it).
fn messages(cap: u64) -> (Messages, Messages) {
    let seg = segment(cap);
    let a = Messages::new(ring(&seg, cap), "test".into());
    let b = Messages::new(ring(&seg, cap), "test".into());
    (a, b)
}

#[test]
fn bytes_wrap_and_positions_move() {
    let seg = segment(16);
    let r = ring(&seg, 16);
    let mut w = 0;
    let mut out = Vec::new();
    for round in 0..20u8 {
        let msg = [round; 7];
        assert_eq!(r.room(w).unwrap(), 16 - (w - r.head()));
        r.write(w, &msg);
        w += 7;
        r.publish(w, &Futex);
        let head = r.head();
        assert_eq!(r.available(head).unwrap(), 7);
        out.clear();
        r.read_append(head, 7, &mut out);
        assert_eq!(out, msg, "round {round} (crosses the end every other time)");
        r.consume(head + 7, &Futex);
    }
    assert!(!r.has_data());
}

#[test]
fn scribbled_positions_are_errors() {
    let seg = segment(64);
    let r = ring(&seg, 64);
    r.scribble(0, 1000);
    let e = r.available(0).unwrap_err();
    assert_eq!(e.what, "tail");
    assert!(e.expected.contains("within 64 bytes"), "{e:?}");
    assert!(r.room(0).is_ok(), "the writer's own view of head is fine");
    r.scribble(900, 1000);
    assert!(r.room(0).is_err(), "head ahead of the writer");
}

#[test]
fn skip_to_discards_and_frees() {
    let seg = segment(32);
    let r = ring(&seg, 32);
    r.write(0, &[1; 32]);
    r.publish(32, &Futex);
    assert_eq!(r.room(32).unwrap(), 0);
    r.skip_to(50, &Futex);
    assert_eq!((r.head(), r.tail()), (50, 50));
    assert_eq!(r.room(50).unwrap(), 32);
}

#[test]
fn messages_smoke_and_wrap() {
    let (tx, rx) = messages(64);
    let mut out = Vec::new();
    assert!(!rx.try_recv(&mut out).unwrap());
    for round in 0..50u8 {
        let msg = [round; 13];
        assert!(tx.try_send(&[&msg[..5], &msg[5..]]).unwrap());
        assert!(tx.try_send(&[&msg[..3]]).unwrap());
        assert!(rx.try_recv(&mut out).unwrap());
        assert_eq!(out, msg);
        assert!(rx.try_recv(&mut out).unwrap());
        assert_eq!(out, [round; 3]);
    }
}

#[test]
fn written_messages_appear_on_publish() {
    let (tx, rx) = messages(64);
    let mut out = Vec::new();
    assert!(tx.try_write(&[b"one"]).unwrap());
    assert!(tx.try_write(&[b"two"]).unwrap());
    assert!(!rx.try_recv(&mut out).unwrap(), "not published yet");
    tx.publish();
    assert!(rx.try_recv(&mut out).unwrap());
    assert_eq!(out, b"one");
    assert!(rx.try_recv(&mut out).unwrap());
    assert_eq!(out, b"two");
    // Room counts unpublished bytes too.
    assert!(tx.try_write(&[&[0; 32]]).unwrap());
    assert!(!tx.try_write(&[&[0; 32]]).unwrap());
}

#[test]
fn reset_forgets_unpublished_messages() {
    let (tx, rx) = messages(64);
    assert!(tx.try_send(&[b"old"]).unwrap());
    tx.reset();
    tx.publish();
    let mut out = Vec::new();
    assert!(!rx.try_recv(&mut out).unwrap(), "a reset ring is empty");
    assert!(tx.try_send(&[b"new"]).unwrap());
    assert!(rx.try_recv(&mut out).unwrap());
    assert_eq!(out, b"new");
}

#[test]
fn message_capacity_and_limits() {
    let (tx, rx) = messages(64);
    assert!(matches!(
        tx.try_send(&[&[0; 33]]),
        Err(Error::MessageTooLarge { .. })
    ));
    assert!(tx.try_send(&[&[1; 32]]).unwrap());
    assert!(tx.try_send(&[&[2; 24]]).unwrap());
    assert!(!tx.try_send(&[&[3; 1]]).unwrap(), "64 bytes used: full");
    assert!(!tx.wait_space(1, Some(Instant::now())));
    let mut out = Vec::new();
    assert!(rx.try_recv(&mut out).unwrap());
    assert!(tx.wait_space(1, Some(Instant::now())));
}

#[test]
fn corrupt_lengths_are_errors() {
    let (tx, rx) = messages(64);
    tx.ring.scribble(0, 1000);
    let mut out = Vec::new();
    assert!(matches!(rx.try_recv(&mut out), Err(Error::Corrupt { .. })));
    tx.ring.write(0, &u32::MAX.to_le_bytes());
    tx.ring.scribble(0, 8);
    assert!(matches!(rx.try_recv(&mut out), Err(Error::Corrupt { .. })));
}

#[test]
fn spsc_threads_with_sleep() {
    let (tx, rx) = messages(256);
    let n = 20_000u32;
    let t = std::thread::spawn(move || {
        for i in 0..n {
            let b = i.to_le_bytes();
            while !tx.try_send(&[&b]).unwrap() {
                assert!(tx.wait_space(4, Some(Instant::now() + Duration::from_secs(10))));
            }
            if i % 5000 == 0 {
                // Pauses long enough for the reader to go to sleep.
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    let mut out = Vec::new();
    for i in 0..n {
        while !rx.try_recv(&mut out).unwrap() {
            assert!(
                rx.wait_data(Some(Instant::now() + Duration::from_secs(10))),
                "watchdog"
            );
        }
        assert_eq!(out, i.to_le_bytes());
    }
    t.join().unwrap();
}
