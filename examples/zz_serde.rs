use serde::{Deserialize, Serialize};
use shmproc::{Process, Queue};
use std::time::Instant;
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Tick {
    seq: u64,
    ts_ns: u64,
    symbol: String,
    venue: String,
    price: f64,
    qty: u32,
    flags: u32,
    levels: Vec<u32>,
}
impl Tick {
    fn new(seq: u64) -> Tick {
        Tick {
            seq,
            ts_ns: seq.wrapping_mul(7919),
            symbol: "EURUSD.SPOT.FX".into(),
            venue: "XLON-MTF".into(),
            price: 1.0842 + seq as f64 * 1e-9,
            qty: (seq % 1000) as u32,
            flags: 3,
            levels: vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        }
    }
}
fn produce((q, n): (Queue<Tick>, u64)) {
    for i in 0..n {
        q.put(&Tick::new(i)).unwrap();
    }
}
fn main() {
    shmproc::init();
    let n = 3_000_000;
    for batch in [false, true, false, true] {
        let q = Queue::<Tick>::new(1024).unwrap();
        let t0 = Instant::now();
        let p = Process::spawn(produce, (q.clone(), n)).unwrap();
        if batch {
            let mut got = 0;
            let mut buf = Vec::with_capacity(64);
            while got < n {
                buf.clear();
                got += q.get_many(&mut buf, 64).unwrap() as u64;
                std::hint::black_box(&buf);
            }
        } else {
            for _ in 0..n {
                std::hint::black_box(q.get().unwrap());
            }
        }
        let dt = t0.elapsed();
        p.join().unwrap();
        println!(
            "batch={batch}: {:.2} M msgs/s",
            n as f64 / dt.as_secs_f64() / 1e6
        );
    }
}
