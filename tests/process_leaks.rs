//! What a launched child's exit word costs (`docs/protocols/exit-word.md`):
//! one 4 KiB mapping in the parent while a handle (or the registry's
//! record) lives, one in a re-executed child, no descriptor on either side,
//! and at most `SPARE_MAX` (16) pages of reaped children kept for later
//! forks. Alone in its binary, so no other test's children are counted.

mod common;

use common::{join, Reaper};
use shmproc::{Process, Queue, StartMethod};

/// The page's memfd name, as `/proc/<pid>/maps` and `fd` links show it.
const PAGE: &str = "memfd:shmproc.exit";

fn pages_mapped() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains(PAGE))
        .count()
}

fn page_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains(PAGE))
        .count()
}

/// The child's entry: reports its own pages' mappings and descriptors.
fn report(q: Queue<(u64, u64)>) {
    q.put(&(pages_mapped() as u64, page_descriptors() as u64))
        .unwrap();
}

#[test]
fn exit_word_pages_follow_the_handles() {
    shmproc::init();
    let (maps, fds) = (pages_mapped(), page_descriptors());
    assert_eq!(fds, 0);
    let q = Queue::<(u64, u64)>::new(4).unwrap();
    let mut r = Reaper::new();
    let spawned = r.watch(Process::spawn(report, q.clone()).unwrap());
    let (child_maps, child_fds) = q.get().unwrap();
    assert_eq!(
        (child_maps, child_fds),
        (1, 0),
        "a re-executed child maps its own page and keeps no descriptor"
    );
    let forked = r.watch(
        Process::builder()
            .start_method(StartMethod::Fork)
            .spawn(report, q.clone())
            .unwrap(),
    );
    let (_, child_fds) = q.get().unwrap();
    assert_eq!(child_fds, 0, "a forked child keeps no descriptor");
    assert_eq!(pages_mapped(), maps + 2, "one page per child handle");
    assert_eq!(page_descriptors(), 0, "the parent keeps no descriptor");
    assert_eq!((join(&spawned), join(&forked)), (0, 0));
    drop((spawned, forked, r));
    // The registry forgets reaped children at the next look.
    assert!(shmproc::active_children().is_empty());
    assert_eq!(
        pages_mapped(),
        maps + 2,
        "the pages of reaped children are kept for later forks"
    );
    // A fork takes a kept page: nothing new is mapped.
    let mut r = Reaper::new();
    let forked = r.watch(
        Process::builder()
            .start_method(StartMethod::Fork)
            .spawn(report, q.clone())
            .unwrap(),
    );
    q.get().unwrap();
    assert_eq!(pages_mapped(), maps + 2, "a fork reuses a kept page");
    assert_eq!(join(&forked), 0, "the reused word still reports the exit");
    drop((forked, r));
    assert!(shmproc::active_children().is_empty());
    let mut r = Reaper::new();
    // More children at once than the list keeps: the rest are unmapped.
    let many: Vec<_> = (0..24)
        .map(|_| {
            r.watch(
                Process::builder()
                    .start_method(StartMethod::Fork)
                    .spawn(report, q.clone())
                    .unwrap(),
            )
        })
        .collect();
    for _ in &many {
        q.get().unwrap();
    }
    assert_eq!(pages_mapped(), maps + 24, "one page per live child");
    for p in &many {
        assert_eq!(join(p), 0);
    }
    drop((many, r));
    assert!(shmproc::active_children().is_empty());
    assert_eq!(pages_mapped(), maps + 16, "at most 16 pages kept");
}
