//! A dropped (or joined) pool leaves nothing behind: no worker process (not even a
//! zombie), no mapping of its segment, no descriptor. Alone in its binary,
//! so no other test's pool is counted.

use std::time::{Duration, Instant};

use shmproc::Pool;

fn double(x: u64) -> u64 {
    2 * x
}

fn pool_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains("memfd:shmproc.pool"))
        .count()
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn dropped_pool_leaves_nothing() {
    shmproc::init();
    let (maps, fds) = (pool_mappings(), open_fds());
    let start = Instant::now();
    for round in 0..3 {
        let pool = Pool::new(2).unwrap();
        let pids = pool.pids();
        let r = pool.apply_async(double, 21);
        assert_eq!(pool.map(double, 0..1000u64).unwrap()[999], 1998);
        assert!(
            pool_mappings() > maps,
            "round {round}: the segment is mapped while the pool lives"
        );
        if round == 1 {
            pool.close();
            pool.join().unwrap();
        }
        drop(pool);
        assert_eq!(r.get().unwrap(), 42, "a finished result outlives the pool");
        assert_eq!(
            pool_mappings(),
            maps,
            "round {round}: segment still mapped after drop"
        );
        assert_eq!(open_fds(), fds, "round {round}: descriptors leaked");
        for pid in pids {
            assert!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "worker {pid} left behind"
            );
        }
        assert!(start.elapsed() < Duration::from_secs(60), "watchdog");
    }
}
