//! Quick throughput self-check of queues and pipes between processes
//! (`cargo bench --bench queue`; `SHMPROC_BENCH_QUICK=1` for a short run).
//! Prints one line per workload. The side-by-side comparison with peers is
//! `benches/compare.rs`.

use std::time::{Duration, Instant};

use shmproc::{Connection, Pipe, Pod, Process, Queue};

fn quick() -> bool {
    std::env::var_os("SHMPROC_BENCH_QUICK").is_some()
}

fn put_n((q, n): (Queue<u64, Pod>, u64)) {
    for i in 0..n {
        q.put(&i).unwrap();
    }
}

fn put_frames((q, n, size): (Queue<u64, Pod>, u64, usize)) {
    let frame = vec![7u8; size];
    for _ in 0..n {
        q.put_bytes(&frame).unwrap();
    }
}

/// A ~100-byte serde message.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
struct Msg {
    id: u64,
    name: String,
    values: [u32; 16],
    flag: bool,
}

fn msg(i: u64) -> Msg {
    Msg {
        id: i,
        name: "a name of some length".into(),
        values: [i as u32; 16],
        flag: i % 2 == 0,
    }
}

fn put_msgs((q, n): (Queue<Msg>, u64)) {
    for i in 0..n {
        q.put(&msg(i)).unwrap();
    }
}

/// SPSC ~100-byte serde messages, producer process to this process.
fn spsc_serde(n: u64) -> f64 {
    let q: Queue<Msg> = Queue::new(1024).unwrap();
    let p = Process::spawn(put_msgs, (q.clone(), n)).unwrap();
    let _ = q.get().unwrap();
    let t = Instant::now();
    for i in 1..n {
        assert_eq!(q.get().unwrap().id, i);
    }
    let rate = (n - 1) as f64 / t.elapsed().as_secs_f64();
    p.join().unwrap();
    rate
}

fn echo(c: Connection<u64, Pod>) {
    while let Ok(x) = c.recv() {
        if c.send(&x).is_err() {
            break;
        }
    }
}

/// SPSC 8-byte Pod items, producer process to this process, one get per item.
fn spsc_pod(n: u64) -> f64 {
    let q: Queue<u64, Pod> = Queue::new(4096).unwrap();
    let p = Process::spawn(put_n, (q.clone(), n)).unwrap();
    let _ = q.get().unwrap();
    let t = Instant::now();
    let mut sum = 0u64;
    for _ in 1..n {
        sum = sum.wrapping_add(q.get().unwrap());
    }
    let rate = (n - 1) as f64 / t.elapsed().as_secs_f64();
    assert_eq!(sum, (1..n).sum::<u64>());
    p.join().unwrap();
    rate
}

/// 1 MiB byte frames, producer process to this process: GB/s.
fn big_frames(n: u64, size: usize) -> f64 {
    let q: Queue<u64, Pod> = Queue::builder()
        .maxsize(64)
        .bulk_size(1 << 20)
        .create()
        .unwrap();
    let p = Process::spawn(put_frames, (q.clone(), n, size)).unwrap();
    let _ = q.get_bytes().unwrap();
    let t = Instant::now();
    for _ in 1..n {
        assert_eq!(q.get_bytes().unwrap().len(), size);
    }
    let gbs = ((n - 1) as f64 * size as f64) / t.elapsed().as_secs_f64() / 1e9;
    p.join().unwrap();
    gbs
}

/// Pipe ping-pong with a child process: mean round trip.
fn ping_pong(n: u32) -> Duration {
    let (a, b) = Pipe::builder().duplex::<u64, Pod>().unwrap();
    let p = Process::spawn(echo, b).unwrap();
    for _ in 0..1000 {
        a.send(&1).unwrap();
        a.recv().unwrap();
    }
    let t = Instant::now();
    for i in 0..u64::from(n) {
        a.send(&i).unwrap();
        assert_eq!(a.recv().unwrap(), i);
    }
    let rtt = t.elapsed() / n;
    drop(a);
    p.join().unwrap();
    rtt
}

fn main() {
    shmproc::init();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let scale = if quick() { 1 } else { 5 };
    for _ in 0..3 {
        println!(
            "RESULT spsc_pod8_process msgs_per_s={:.0}",
            spsc_pod(2_000_000 * scale)
        );
    }
    for _ in 0..3 {
        println!(
            "RESULT spsc_serde100_process msgs_per_s={:.0}",
            spsc_serde(500_000 * scale)
        );
    }
    for _ in 0..3 {
        println!(
            "RESULT frames_1mib_process GB_per_s={:.2}",
            big_frames(500 * scale, 1 << 20)
        );
    }
    for _ in 0..3 {
        println!(
            "RESULT pipe_pingpong_process rtt_us={:.2}",
            ping_pong(20_000 * scale as u32).as_secs_f64() * 1e6
        );
    }
}
