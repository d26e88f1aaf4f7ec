//! Bad input: wrong arguments, segments of another kind or type, scribbled
//! headers, ring and bulk state. Every call returns (an error or a
//! garbage-but-safe value); nothing panics or hangs (a `Watchdog` turns a hang
//! into a failure).

mod common;
use common::{unique_name, Watchdog};

use std::os::unix::fs::FileExt;
use std::time::Duration;

use shmproc::{Error, JoinableQueue, Pod, Queue};

/// Where a queue segment's payload starts in its file: after the 256-byte
/// segment header (`docs/protocols/segment.md`). A hostile peer knows the
/// documented layout; so do these tests.
const HEADER: u64 = 256;
/// Payload offset of the first slot (`docs/protocols/queue.md`, "Layout").
const SLOTS: u64 = 2048;

fn file(name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(format!("/dev/shm/shmproc.{name}"))
        .unwrap()
}

fn write_u64(name: &str, off: u64, v: u64) {
    file(name).write_all_at(&v.to_le_bytes(), off).unwrap();
}

#[test]
fn bad_arguments() {
    assert!(matches!(
        Queue::<u8, Pod>::new(0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Queue::<u8, Pod>::new(1 << 25),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Queue::<u8, Pod>::builder().slot_size(1 << 21).create(),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Queue::<u8, Pod>::builder().bulk_size(8).create(),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        Queue::<u8, Pod>::builder().max_message(0).create(),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(Queue::<u8, Pod>::builder()
        .name("bad/name")
        .create()
        .is_err());
}

#[test]
fn wrong_kind_type_or_codec_is_incompatible() {
    let name = unique_name("q-incompat");
    let _q: Queue<u64, Pod> = Queue::builder().name(&name).create().unwrap();
    assert!(matches!(
        Queue::<u32, Pod>::open(&name),
        Err(Error::Incompatible { .. })
    ));
    assert!(matches!(
        Queue::<u64>::open(&name),
        Err(Error::Incompatible { .. })
    ));
    assert!(matches!(
        JoinableQueue::<u64, Pod>::open(&name),
        Err(Error::Incompatible { .. })
    ));
}

#[test]
fn scribbled_params_are_corrupt() {
    for (param, value) in [
        (0u64, 0u64),
        (0, 1 << 40),
        (1, 3),
        (1, 12),
        (2, 7),
        (3, 0),
        (0, 5),
    ] {
        let name = unique_name("q-params");
        let _q: Queue<u64, Pod> = Queue::builder().name(&name).maxsize(4).create().unwrap();
        write_u64(&name, 64 + 8 * param, value);
        match Queue::<u64, Pod>::open(&name) {
            Err(Error::Corrupt { .. }) => {}
            other => panic!("param {param} = {value}: expected Corrupt, got {other:?}"),
        }
    }
}

#[test]
fn scribbled_slot_state_gives_errors_not_hangs() {
    let _w = Watchdog::new("scribbled slot state");
    let garbage = [
        u64::MAX,
        1 << 60,               // BUSY without a claimer
        (1 << 61) | 5,         // FULL for a position far ahead
        (1 << 61) | (1 << 63), // tombstone at position 0 (skipped)
        0x1234_5678_9abc_def0,
        (1 << 61) | (1 << 62), // a bulk descriptor with garbage inside
    ];
    for g in garbage {
        let name = unique_name("q-slot");
        let q: Queue<u64, Pod> = Queue::builder().name(&name).maxsize(2).create().unwrap();
        q.put(&1).unwrap();
        // Slot 0's state word, its len and tag, its data.
        write_u64(&name, HEADER + SLOTS, g);
        write_u64(&name, HEADER + SLOTS + 8, u64::MAX);
        write_u64(&name, HEADER + SLOTS + 16, u64::MAX);
        let _ = q.try_get();
        let _ = q.get_timeout(Duration::from_millis(50));
        let _ = q.try_put(&2);
        let _ = q.put_timeout(&3, Duration::from_millis(50));
        let _ = q.len();
        let _ = q.get_bytes_timeout(Duration::from_millis(50));
    }
}

#[test]
fn corrupt_length_is_reported() {
    let name = unique_name("q-len");
    let q: Queue<u64, Pod> = Queue::builder().name(&name).maxsize(2).create().unwrap();
    q.put(&1).unwrap();
    file(&name)
        .write_all_at(&u32::MAX.to_le_bytes(), HEADER + SLOTS + 8)
        .unwrap();
    assert!(matches!(q.try_get(), Err(Error::Corrupt { .. })));
    // The slot was freed anyway: the queue goes on.
    q.put(&2).unwrap();
    assert_eq!(q.get().unwrap(), 2);
}

#[test]
fn scribbled_bulk_state_returns() {
    let _w = Watchdog::new("scribbled bulk state");
    // Payload offsets of the bulk stream's words (`docs/protocols/queue.md`,
    // "Layout"): the byte ring's head (384) and tail (512), the put lock's
    // word (768), w_end (800), aborted (816).
    for (field, value) in [
        (768u64, 0xdead_beef_0000_0001u64),
        (512, u64::MAX),
        (384, 1 << 50),
        (800, 1 << 62),
        (816, 1),
    ] {
        let name = unique_name("q-bulk");
        let q: Queue<u64, Pod> = Queue::builder()
            .name(&name)
            .maxsize(4)
            .bulk_size(256)
            .max_message(4096)
            .create()
            .unwrap();
        q.put_bytes(&[5; 100]).unwrap();
        write_u64(&name, HEADER + field, value);
        let _ = q.get_bytes_timeout(Duration::from_millis(50));
        let _ = q.put_bytes_timeout(&[6; 200], Duration::from_millis(50));
        let _ = q.try_get_bytes();
    }
}

#[test]
fn undecodable_serde_message_is_a_codec_error() {
    let q: Queue<String> = Queue::new(2).unwrap();
    q.put_bytes(&[0xff, 0xff, 0xff]).unwrap();
    assert!(matches!(q.get(), Err(Error::Codec { .. })));
    let p: Queue<u64, Pod> = Queue::new(2).unwrap();
    p.put_bytes(&[1, 2, 3]).unwrap();
    assert!(matches!(p.get(), Err(Error::Corrupt { .. })));
}

#[test]
fn undecodable_message_ends_a_batch_and_keeps_what_came_before() {
    let q: Queue<u32> = Queue::new(8).unwrap();
    q.put(&1).unwrap();
    q.put(&2).unwrap();
    // A varint that never ends: not a u32.
    q.put_bytes(&[0xff; 6]).unwrap();
    q.put(&4).unwrap();
    let mut out = Vec::new();
    assert!(matches!(q.get_many(&mut out, 10), Err(Error::Codec { .. })));
    assert_eq!(out, [1, 2], "items before the bad one are handed over");
    // The bad message was taken (and is gone); the next one follows.
    assert_eq!(q.get().unwrap(), 4);
    assert!(q.is_empty());
}
