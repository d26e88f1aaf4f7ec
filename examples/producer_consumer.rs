//! N producer and M consumer processes over one `Queue`.
//!
//! ```text
//! cargo run --release --example producer_consumer -- [producers] [consumers] [messages] [size]
//! ```
//! `size` 8 (default) sends 8-byte Pod items; any other size sends byte frames
//! of that many bytes (e.g. 1048576 for 1 MiB messages, streamed through the
//! queue's bulk area). Prints messages/s, MB/s and a checksum computed by the
//! producers and one computed by the consumers, which must match.

use std::time::Instant;

use shmproc::{Pod, Process, Queue};

/// One producer: its share of the messages, then its checksum.
fn produce((q, sums, id, n, size): (Queue<u64, Pod>, Queue<u64, Pod>, u64, u64, usize)) {
    let mut sum = 0u64;
    let mut frame = vec![0u8; size];
    for i in 0..n {
        let v = (id << 40) | i;
        sum = sum.wrapping_add(mix(v));
        if size == 8 {
            q.put(&v).unwrap();
        } else {
            frame[..8].copy_from_slice(&v.to_le_bytes());
            let last = frame.len() - 1;
            frame[last] = v as u8;
            q.put_bytes(&frame).unwrap();
        }
    }
    sums.put(&sum).unwrap();
}

/// One consumer: takes messages until the queue is closed, then its checksum.
fn consume((q, sums, size): (Queue<u64, Pod>, Queue<u64, Pod>, usize)) {
    let mut sum = 0u64;
    let mut batch = Vec::with_capacity(256);
    loop {
        if size == 8 {
            batch.clear();
            match q.get_many(&mut batch, 256) {
                Ok(_) => {
                    for v in &batch {
                        sum = sum.wrapping_add(mix(*v));
                    }
                }
                Err(shmproc::Error::Closed) => break,
                Err(e) => panic!("consumer: {e}"),
            }
        } else {
            match q.get_bytes() {
                Ok(f) => {
                    assert_eq!(f.len(), size, "frame size");
                    let v = u64::from_le_bytes(f[..8].try_into().unwrap());
                    assert_eq!(f[size - 1], v as u8, "frame tail");
                    sum = sum.wrapping_add(mix(v));
                }
                Err(shmproc::Error::Closed) => break,
                Err(e) => panic!("consumer: {e}"),
            }
        }
    }
    sums.put(&sum).unwrap();
}

/// A checksum term that order cannot cancel out.
fn mix(v: u64) -> u64 {
    v.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17)
}

fn arg(i: usize, default: u64) -> u64 {
    std::env::args()
        .nth(i)
        .map(|a| a.parse().expect("arguments are numbers"))
        .unwrap_or(default)
}

fn main() -> shmproc::Result<()> {
    shmproc::init();
    let producers = arg(1, 1);
    let consumers = arg(2, 1);
    let size = arg(4, 8).max(8) as usize;
    let messages = arg(3, if size == 8 { 10_000_000 } else { 2_000 });
    let q: Queue<u64, Pod> = Queue::builder()
        .maxsize(if size == 8 { 4096 } else { 64 })
        .bulk_size(if size == 8 { 64 * 1024 } else { 1 << 20 })
        .create()?;
    let psums: Queue<u64, Pod> = Queue::new(64)?;
    let csums: Queue<u64, Pod> = Queue::new(64)?;

    let start = Instant::now();
    let cs: Vec<_> = (0..consumers)
        .map(|_| Process::spawn(consume, (q.clone(), csums.clone(), size)))
        .collect::<Result<_, _>>()?;
    let ps: Vec<_> = (0..producers)
        .map(|id| {
            let n = messages / producers + u64::from(id < messages % producers);
            Process::spawn(produce, (q.clone(), psums.clone(), id, n, size))
        })
        .collect::<Result<_, _>>()?;
    for p in &ps {
        assert_eq!(p.join()?, 0, "a producer failed");
    }
    q.close();
    for c in &cs {
        assert_eq!(c.join()?, 0, "a consumer failed");
    }
    let secs = start.elapsed().as_secs_f64();
    let sum = |q: &Queue<u64, Pod>, n| {
        (0..n)
            .map(|_| q.get().unwrap())
            .fold(0u64, u64::wrapping_add)
    };
    let (put_sum, got_sum) = (sum(&psums, producers), sum(&csums, consumers));
    println!(
        "{producers} producers, {consumers} consumers, {messages} messages of {size} bytes in {secs:.3} s: \
         {:.0} msgs/s, {:.1} MB/s",
        messages as f64 / secs,
        (messages as f64 * size as f64) / secs / 1e6
    );
    println!(
        "checksum put {put_sum:#018x} got {got_sum:#018x}: {}",
        if put_sum == got_sum {
            "match"
        } else {
            "MISMATCH"
        }
    );
    if put_sum != got_sum {
        std::process::exit(1);
    }
    Ok(())
}
