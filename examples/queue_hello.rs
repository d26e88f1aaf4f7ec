//! A producer and a consumer process sharing one queue.
//!
//! Python's
//! ```python
//! from multiprocessing import Process, Queue
//!
//! def producer(queue):
//!     queue.put("Hello from Producer")
//!
//! def consumer(queue):
//!     message = queue.get()
//!     print(f"Received: {message}")
//!
//! if __name__ == '__main__':
//!     queue = Queue()
//!     p1 = Process(target=producer, args=(queue,))
//!     p2 = Process(target=consumer, args=(queue,))
//!     p1.start(); p2.start()
//!     p1.join(); p2.join()
//! ```
//! becomes the program below. The queue handle is an argument like any
//! other: the launcher hands its shared memory to each child.
//!
//! Run with `cargo run --example queue_hello`.

use shmproc::{Process, Queue};

fn producer(queue: Queue<String>) {
    queue.put(&"Hello from Producer".to_string()).unwrap();
}

fn consumer(queue: Queue<String>) {
    let message = queue.get().unwrap();
    println!("Received: {message}");
}

fn main() -> shmproc::Result<()> {
    shmproc::init();
    let queue = Queue::<String>::new(16)?;
    let p1 = Process::spawn(producer, queue.clone())?;
    let p2 = Process::spawn(consumer, queue.clone())?;
    p1.join()?;
    p2.join()?;
    Ok(())
}
