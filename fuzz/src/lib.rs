//! Fuzz harnesses, shared by the cargo-fuzz targets and by the main crate's
//! `tests/fuzz_regressions.rs` (which includes this file by path), so every
//! kept crasher replays under a normal `cargo test`. Only `shmproc`, std,
//! and (for [`run_wire`]) serde and the postcard crate to compare with.
//!
//! - [`run_ops`]: a random sequence of queue operations (put, get, close,
//!   batches, sizes from 0 to far larger than the ring and its bulk area)
//!   checked against a `VecDeque` model.
//! - [`run_segment`]: arbitrary bytes written over a live queue segment
//!   (header, ring state, bulk state), then open/get/put: must return.
//! - [`run_wire`]: arbitrary bytes as a message of several serde types: the
//!   queue's codec (shmproc's own postcard-format reader and writer) must
//!   decode what the postcard crate decodes, fail where it fails, with the
//!   same error, and re-encode to postcard's bytes.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use shmproc::{Error, Pod, Queue, Serde};

/// A segment name no other run uses: prefix, pid and a counter.
fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    // Relaxed: only uniqueness matters.
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// Reads fuzz bytes as small numbers; zeros once exhausted.
struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | (u16::from(self.u8()) << 8)
    }
    fn done(&self) -> bool {
        self.at >= self.data.len()
    }
}

fn frame(tag: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u64 * 7 + tag) as u8).collect()
}

/// Runs one op sequence against the model; panics on any disagreement.
pub fn run_ops(data: &[u8]) {
    let mut inp = Input { data, at: 0 };
    let cap = 1 + usize::from(inp.u8() % 6);
    let slot = 16 + 8 * usize::from(inp.u8() % 6);
    let bulk = [0usize, 64, 256, 4096][usize::from(inp.u8() % 4)];
    let q: Queue<u64, Pod> = Queue::builder()
        .maxsize(cap)
        .slot_size(slot)
        .bulk_size(bulk)
        .create()
        .expect("create");
    let mut model: VecDeque<Vec<u8>> = VecDeque::new();
    let mut closed = false;
    let mut tag = 0u64;
    let wait = Duration::from_secs(20);
    for _ in 0..300 {
        if inp.done() {
            break;
        }
        tag += 1;
        match inp.u8() % 7 {
            0 => {
                let len = usize::from(inp.u16()) % (slot * 4 + bulk * 3 + 1);
                let msg = frame(tag, len);
                if len > slot && bulk == 0 {
                    assert!(matches!(
                        q.try_put_bytes(&msg),
                        Err(Error::MessageTooLarge { .. })
                    ));
                } else if closed {
                    assert!(matches!(q.try_put_bytes(&msg), Err(Error::Closed)));
                } else if model.len() == cap {
                    assert!(matches!(q.try_put_bytes(&msg), Err(Error::Full)));
                } else if len <= slot {
                    q.try_put_bytes(&msg).expect("try_put with room");
                    model.push_back(msg);
                } else {
                    // A bulk message streams only while someone reads: put it
                    // from a thread and drain everything here, in order.
                    let q2 = q.clone();
                    let m2 = msg.clone();
                    let t = std::thread::spawn(move || q2.put_bytes(&m2));
                    for want in model.drain(..) {
                        assert_eq!(q.get_bytes_timeout(wait).expect("drain"), want);
                    }
                    assert_eq!(q.get_bytes_timeout(wait).expect("bulk"), msg);
                    t.join().expect("putter").expect("bulk put");
                }
            }
            1 | 6 => match model.pop_front() {
                Some(want) => assert_eq!(q.try_get_bytes().expect("try_get"), want),
                None if closed => assert!(matches!(q.try_get_bytes(), Err(Error::Closed))),
                None => assert!(matches!(q.try_get_bytes(), Err(Error::Empty))),
            },
            2 => {
                q.close();
                closed = true;
            }
            3 => {
                let n = usize::from(inp.u8() % 5);
                let items: Vec<u64> = (0..n as u64).map(|i| tag * 100 + i).collect();
                if closed && n > 0 {
                    assert!(matches!(q.put_many(&items), Err(Error::Closed)));
                } else if model.len() + n <= cap {
                    q.put_many(&items).expect("put_many with room");
                    model.extend(items.iter().map(|v| v.to_le_bytes().to_vec()));
                }
            }
            4 => {
                let max = 1 + usize::from(inp.u8() % 4);
                let k = max.min(model.len());
                if k > 0
                    && model.iter().take(k).all(|m| m.len() == 8)
                    && (k == max || k == model.len())
                {
                    let mut out = Vec::new();
                    assert_eq!(q.get_many(&mut out, max).expect("get_many"), k);
                    for v in out {
                        assert_eq!(v.to_le_bytes().to_vec(), model.pop_front().expect("model"));
                    }
                }
            }
            _ => {
                assert_eq!(q.len(), model.len());
                assert_eq!(q.is_empty(), model.is_empty());
                assert_eq!(q.is_full(), model.len() == cap);
                assert_eq!(q.capacity(), cap);
            }
        }
    }
}

/// Scribbles `data` over a live named queue's file, then uses it through a
/// fresh handle and the old one. Every call must return.
pub fn run_segment(data: &[u8]) {
    let mut inp = Input { data, at: 0 };
    let name = unique_name("fuzz-seg");
    let cap = 1 + usize::from(inp.u8() % 4);
    let bulk = if inp.u8() % 2 == 0 { 0 } else { 64 };
    let q: Queue<u64, Pod> = Queue::builder()
        .name(&name)
        .maxsize(cap)
        .bulk_size(bulk)
        .max_message(4096)
        .create()
        .expect("create");
    for i in 0..u64::from(inp.u8() % 4) {
        let _ = q.try_put(&i);
    }
    let path = format!("/dev/shm/shmproc.{name}");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .expect("segment file");
    let len = file.metadata().expect("metadata").len();
    // Patches: (offset, count, bytes), offsets biased toward the header and
    // control block where the interesting state lives.
    while !inp.done() {
        let off = u64::from(inp.u16()) % len;
        let n = usize::from(inp.u8() % 16);
        let bytes: Vec<u8> = (0..n).map(|_| inp.u8()).collect();
        // The header's init word (bytes 16..20) only makes open wait 2 s for a
        // creator (the segment layer's business, tested there): leave it.
        if off < 20 && off + n as u64 > 16 {
            continue;
        }
        let _ = file.write_at(&bytes, off);
    }
    let short = Duration::from_millis(1);
    let poke = |q: &Queue<u64, Pod>| {
        let _ = q.len();
        let _ = q.is_full();
        let _ = q.try_get();
        let _ = q.try_get_bytes();
        let _ = q.try_put(&7);
        let _ = q.try_put_bytes(&[1; 48]);
        let _ = q.get_timeout(short);
        let _ = q.put_timeout(&8, short);
        let _ = q.put_bytes_timeout(&[2; 50], short);
        let _ = q.get_bytes_timeout(short);
        let mut out = Vec::new();
        let _ = q.try_get().map(|v| out.push(v));
    };
    if let Ok(other) = Queue::<u64, Pod>::open(&name) {
        poke(&other);
        other.close();
        poke(&other);
    }
    poke(&q);
}

#[path = "../../tests/common/messages.rs"]
mod messages;
use messages::{Mixed, Shape, Tick};

/// Decodes `data` as each of several types through a queue and through
/// the postcard crate; panics on any disagreement.
pub fn run_wire(data: &[u8]) {
    same_as_postcard::<Tick>(data);
    same_as_postcard::<Mixed>(data);
    same_as_postcard::<Vec<Shape>>(data);
    same_as_postcard::<(u16, i16, u32, i32, char, bool, Option<u8>)>(data);
    same_as_postcard::<(u64, u128, i128, String, f64)>(data);
}

fn same_as_postcard<T>(data: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + Debug + Send + Sync + 'static,
{
    let q: Queue<T, Serde> = Queue::new(2).expect("queue");
    q.put_bytes(data).expect("put_bytes");
    let ours = q.get();
    let theirs = postcard::from_bytes::<T>(data);
    match (ours, theirs) {
        (Ok(a), Ok(b)) => {
            // Debug, not ==: NaN is not equal to itself.
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "decoded values differ");
            q.put(&a).expect("put");
            let bytes = q.get_bytes().expect("get_bytes");
            assert_eq!(
                bytes,
                postcard::to_stdvec(&b).expect("encode"),
                "encodings differ"
            );
        }
        (Err(Error::Codec { source, .. }), Err(e)) => assert_eq!(source, e, "errors differ"),
        (ours, theirs) => panic!("shmproc gave {ours:?}, postcard {theirs:?}"),
    }
}
