//! A cheap coarse clock for bookkeeping that needs milliseconds, not
//! nanoseconds (`CLOCK_MONOTONIC_COARSE`: a vDSO read of the last tick, far
//! cheaper than `Instant::now()` in a VM; `docs/decisions.md`).

/// Milliseconds on the coarse monotonic clock (resolution: one scheduler
/// tick, 1 to 4 ms). Only differences are meaningful.
pub(crate) fn coarse_millis() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC_COARSE
    // exists on every Linux since 2.6.32.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1000) + ts.tv_nsec as u64 / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances() {
        let a = coarse_millis();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let b = coarse_millis();
        assert!(b >= a + 20, "{a} -> {b}");
    }
}
