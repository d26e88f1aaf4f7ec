//! loom models of the byte ring: a writer and a reader that sleep on each
//! other, a writer that dies before publishing, and a reader that dies
//! before freeing (run with
//! `LOOM_MAX_PREEMPTIONS=2 RUSTFLAGS="--cfg loom" cargo test --lib --release loom_`).
//!
//! A lost wake-up shows as a loom deadlock; a published byte that is not the
//! one written, or an unpublished byte that is read, as a wrong value. The
//! ring's bytes are plain memory (loom cannot track them): the models check
//! the positions that guard them.

use std::cell::UnsafeCell;

use loom::sync::Arc;
use loom::thread;

use super::*;
use crate::sync::park::loom_park::LoomPark;

struct Model {
    ctl: BytesCtl,
    data: Box<[UnsafeCell<u8>]>,
    park: LoomPark,
}

// SAFETY: the bytes are accessed only through rings over this model, by the
// writer outside `head..tail` and the reader inside it: the protocol under test.
unsafe impl Sync for Model {}
// SAFETY: as above.
unsafe impl Send for Model {}

fn model(cap: usize) -> Arc<Model> {
    Arc::new(Model {
        ctl: BytesCtl::default(),
        data: (0..cap).map(|_| UnsafeCell::new(0)).collect(),
        park: LoomPark::default(),
    })
}

impl Model {
    fn ring(&self) -> ByteRing {
        // SAFETY: the control words and bytes live as long as the model, which
        // every thread holds through its Arc while it uses the ring;
        // UnsafeCell<u8> has u8's layout and permits writes through the pointer.
        unsafe {
            ByteRing::from_raw(
                &self.ctl,
                None,
                self.data.as_ptr() as *mut u8,
                self.data.len() as u64,
            )
        }
    }

    /// Writer: sends `b` at `w` once there is room (sleeping for it).
    fn send(&self, w: u64, b: u8) -> u64 {
        let r = self.ring();
        r.wait_space(w, 1, &self.park, None);
        assert!(r.room(w).unwrap() >= 1);
        r.write(w, &[b]);
        r.publish(w + 1, &self.park);
        w + 1
    }

    /// Reader: takes the byte at the head once published (sleeping for it),
    /// freeing it unless `free` is false (a reader that dies first).
    fn take(&self, free: bool) -> u8 {
        let r = self.ring();
        let head = r.head();
        r.wait_data(head, &self.park, None);
        assert!(r.available(head).unwrap() >= 1);
        let mut b = [0];
        r.read(head, &mut b);
        if free {
            r.consume(head + 1, &self.park);
        }
        b[0]
    }
}

/// Three bytes through a one-byte ring: each side sleeps on the other.
#[test]
fn loom_bytes_spsc_sleeps_and_wakes() {
    loom::model(|| {
        let m = model(1);
        let m2 = m.clone();
        let t = thread::spawn(move || {
            let mut w = 0;
            for b in 1..=3 {
                w = m2.send(w, b);
            }
        });
        let got: Vec<u8> = (0..3).map(|_| m.take(true)).collect();
        t.join().unwrap();
        assert_eq!(got, [1, 2, 3]);
    });
}

/// A writer writes a byte and dies before publishing it; the next writer
/// (after taking over the role, as the bulk stream's put lock orders) starts
/// at the published tail. The reader never sees the dead writer's byte.
#[test]
fn loom_bytes_dead_writer_publishes_nothing() {
    loom::model(|| {
        let m = model(2);
        let m2 = m.clone();
        let dead = thread::spawn(move || {
            let w = m2.send(0, 1);
            // Written, never published: the writer dies here.
            m2.ring().write(w, &[2]);
        });
        let reader = {
            let m = m.clone();
            thread::spawn(move || [m.take(true), m.take(true)])
        };
        dead.join().unwrap();
        let r = m.ring();
        let w = r.tail();
        assert_eq!(w, 1, "only the published byte counts");
        m.send(w, 3);
        assert_eq!(reader.join().unwrap(), [1, 3]);
    });
}

/// A reader copies a byte and dies before freeing it, while the writer
/// sleeps for room; the next reader starts at the head, reads it again and
/// frees it, which wakes the writer.
#[test]
fn loom_bytes_dead_reader_frees_nothing() {
    loom::model(|| {
        let m = model(1);
        let m2 = m.clone();
        let writer = thread::spawn(move || {
            let w = m2.send(0, 1);
            m2.send(w, 2);
        });
        let m3 = m.clone();
        let dead = thread::spawn(move || m3.take(false));
        assert_eq!(dead.join().unwrap(), 1);
        assert_eq!(m.ring().head(), 0, "the dead reader freed nothing");
        assert_eq!(m.take(true), 1, "the next reader reads it again");
        assert_eq!(m.take(true), 2);
        writer.join().unwrap();
    });
}
