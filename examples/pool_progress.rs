//! A long job with a progress bar: `imap_unordered` yields each result as
//! soon as a worker finishes it, and an `indicatif` bar counts them.
//!
//! Python's
//! ```python
//! with Pool() as pool:
//!     for r in tqdm(pool.imap_unordered(work, range(n)), total=n):
//!         ...
//! ```
//!
//! Run with `cargo run --example pool_progress` (`-- 2000` for more tasks).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use shmproc::Pool;

/// A task of a few milliseconds: is `n` prime (by trial division of a bigger number)?
fn work(n: u64) -> bool {
    std::thread::sleep(Duration::from_millis(2));
    let m = 1_000_003 + 2 * n;
    (2..).take_while(|d| d * d <= m).all(|d| m % d != 0)
}

fn main() -> shmproc::Result<()> {
    shmproc::init();
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let pool = Pool::new(shmproc::cpu_count())?;
    let bar = ProgressBar::new(n).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} tasks, {per_sec}, eta {eta}")
            .expect("a valid template"),
    );
    let mut primes = 0;
    for r in pool.imap_unordered(work, 0..n) {
        if r? {
            primes += 1;
        }
        bar.inc(1);
    }
    bar.finish();
    println!(
        "{primes} primes among {n} numbers, {} tasks done",
        bar.position()
    );
    Ok(())
}
