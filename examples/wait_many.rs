//! One parent waiting on three queues and two child processes at once with
//! `shmproc::wait`, Python's `multiprocessing.connection.wait`.
//!
//! Python's documentation example
//! ```python
//! from multiprocessing import Process, Pipe, current_process
//! from multiprocessing.connection import wait
//!
//! def foo(w):
//!     for i in range(10):
//!         w.send((i, current_process().name))
//!     w.close()
//!
//! if __name__ == '__main__':
//!     readers = []
//!     for i in range(4):
//!         r, w = Pipe(duplex=False)
//!         readers.append(r)
//!         p = Process(target=foo, args=(w,))
//!         p.start()
//!         w.close()
//!     while readers:
//!         for r in wait(readers):
//!             try:
//!                 msg = r.recv()
//!             except EOFError:
//!                 readers.remove(r)
//!             else:
//!                 print(msg)
//! ```
//! waits on pipes only. Here one `wait` covers queues and processes (Python
//! would add `p.sentinel` to the list): each child puts ten messages into a
//! queue of its own and ten into a queue both share, then closes its own
//! queue. A queue has no "writer gone" as a pipe end has, so closing is
//! explicit and for every process; `wait` reports a closed queue ready, and
//! its gets drain what is left, then say `Closed`. The shared queue is
//! closed by the parent, once `wait` has reported both children exited:
//! nobody can put into it any more. A child that died before closing its
//! own queue gets the same treatment, so nothing waits forever.
//!
//! The parent takes one message per ready queue and reaps each child as it
//! exits, as Python's loop does; messages arrive interleaved in any order, so
//! it checks them (each sender's messages in order, none lost) and prints a
//! summary.
//!
//! Run with `cargo run --example wait_many`.

use std::time::Duration;

use shmproc::{Error, Process, Queue, Waitable};

/// A message: its number and the name of the process that sent it.
type Msg = (u32, String);

/// Messages each child puts into each of its two queues.
const PER_QUEUE: u32 = 10;

/// If nothing at all happens for this long, something is broken.
const WATCHDOG: Duration = Duration::from_secs(20);

fn foo((own, shared): (Queue<Msg>, Queue<Msg>)) {
    let me = shmproc::current_process().name().to_string();
    for i in 0..PER_QUEUE {
        own.put(&(i, me.clone())).unwrap();
        shared.put(&(i, me.clone())).unwrap();
    }
    own.close();
}

/// What an index of `wait`'s answer stands for.
#[derive(Clone, Copy)]
enum Watched {
    Queue(usize),
    Child(usize),
}

fn main() -> shmproc::Result<()> {
    shmproc::init();
    let shared = Queue::<Msg>::new(8)?;
    let own = [Queue::<Msg>::new(4)?, Queue::<Msg>::new(4)?];
    let children = own
        .iter()
        .map(|q| Process::spawn(foo, (q.clone(), shared.clone())))
        .collect::<shmproc::Result<Vec<_>>>()?;
    let queues = [&own[0], &own[1], &shared];

    let mut open = [true; 3];
    let mut codes: Vec<Option<i32>> = vec![None; children.len()];
    let mut got: [Vec<Msg>; 3] = Default::default();
    loop {
        // What is still worth waiting for, rebuilt as things finish (as
        // Python's `readers.remove(r)`).
        let mut objs: Vec<&dyn Waitable> = Vec::new();
        let mut what = Vec::new();
        for (i, q) in queues.iter().enumerate().filter(|(i, _)| open[*i]) {
            objs.push(*q);
            what.push(Watched::Queue(i));
        }
        for (i, p) in children
            .iter()
            .enumerate()
            .filter(|(i, _)| codes[*i].is_none())
        {
            objs.push(p);
            what.push(Watched::Child(i));
        }
        if objs.is_empty() {
            break;
        }
        let ready = shmproc::wait(&objs, Some(WATCHDOG))?;
        if ready.is_empty() {
            eprintln!("nothing happened in {WATCHDOG:?}: giving up");
            for p in &children {
                let _ = p.kill();
                let _ = p.join();
            }
            return Err(Error::Timeout);
        }
        for i in ready {
            match what[i] {
                Watched::Queue(q) => match queues[q].try_get() {
                    Ok(msg) => got[q].push(msg),
                    // Readiness is a hint (with one consumer, as here, it
                    // holds; with several, another may have taken the item).
                    Err(Error::Empty) => {}
                    Err(Error::Closed) => open[q] = false,
                    Err(e) => return Err(e),
                },
                Watched::Child(c) => {
                    codes[c] = Some(children[c].join()?);
                    // Nobody puts into a dead child's own queue: close it
                    // (a no-op if the child did) so a crash cannot leave
                    // it open forever; the shared one once both are gone.
                    own[c].close();
                    if codes.iter().all(Option::is_some) {
                        shared.close();
                    }
                }
            }
        }
    }

    let names: Vec<&str> = children.iter().map(Process::name).collect();
    let mut ok = true;
    for (q, msgs) in got.iter().enumerate() {
        let senders: &[&str] = if q < 2 { &names[q..=q] } else { &names };
        // Each sender's messages, in the order they came: 0, 1, 2, ...
        let in_order = senders.iter().all(|s| {
            let seq: Vec<u32> = msgs.iter().filter(|m| m.1 == *s).map(|m| m.0).collect();
            seq == (0..PER_QUEUE).collect::<Vec<_>>()
        });
        let complete = msgs.len() == senders.len() * PER_QUEUE as usize;
        ok &= in_order && complete;
        println!(
            "queue {q}: {} messages from {}, {}, then closed",
            msgs.len(),
            senders.join(" and "),
            if in_order && complete {
                "each sender's in order"
            } else {
                "LOST OR OUT OF ORDER"
            }
        );
    }
    for (p, code) in children.iter().zip(&codes) {
        let code = code.expect("the loop ends when every child has exited");
        ok &= code == 0;
        println!("{} exited with code {code}", p.name());
    }
    println!(
        "got {} items from {} queues; {} children exited with code 0",
        got.iter().map(Vec::len).sum::<usize>(),
        queues.len(),
        codes.iter().filter(|c| **c == Some(0)).count()
    );
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
