//! A child made by `fork` while its parent has futures pending: the child
//! inherits the parent's reactor registrations but not its thread, and must
//! get a reactor of its own. Its own binary: the test forks.

mod common;
use common::{join, unique_name, wait_for_counter, Reaper, Watchdog};

use std::future::Future;
use std::task::{Context, Waker};

use shmproc::{Pod, Process, Queue, StartMethod};

type Q = Queue<u64, Pod>;

#[test]
fn forked_child_awaits_on_a_reactor_of_its_own() {
    shmproc::init();
    let _w = Watchdog::new("forked_child_awaits_on_a_reactor_of_its_own");
    let mut r = Reaper::new();
    // A future pending in the parent: the reactor runs and holds its entry.
    let idle: Q = Queue::new(4).unwrap();
    let mut pending = Box::pin(idle.get_async());
    let mut cx = Context::from_waker(Waker::noop());
    assert!(pending.as_mut().poll(&mut cx).is_pending());

    let name = unique_name("async-fork");
    let work: Q = Queue::builder().name(&name).maxsize(4).create().unwrap();
    let reply: Q = Queue::new(4).unwrap();
    let (w, rep) = (work.clone(), reply.clone());
    let child = r.watch(
        Process::builder()
            .start_method(StartMethod::Fork)
            .spawn(
                move |()| {
                    let v = smol::block_on(w.get_async()).unwrap();
                    rep.put(&(v + 1)).unwrap();
                },
                (),
            )
            .unwrap(),
    );
    // Put only once the child's future sleeps in its reactor (registered
    // as a getter), so the item has to come through a wake-up.
    wait_for_counter(&name, "getters asleep", 1);
    work.put(&41).unwrap();
    assert_eq!(reply.get_timeout(common::WATCHDOG).unwrap(), 42);
    assert_eq!(join(&child), 0);
    // The parent's future is still pending and still completes.
    idle.put(&7).unwrap();
    assert_eq!(smol::block_on(pending).unwrap(), 7);
    shmproc::unlink(&name).unwrap();
}
