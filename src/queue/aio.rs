//! Queues as things to wait for: [`Waitable`](crate::Waitable) (an item can
//! be got, or the queue is closed) and the async calls, runtime-agnostic
//! futures that sleep in the process's reactor (`sync/reactor.rs`) instead
//! of blocking a thread.

use std::future::Future;

use super::api::Queue;
use super::joinable::JoinableQueue;
use super::tasks;
use crate::chan::block::Until;
use crate::chan::codec::Codec;
use crate::chan::ring::Side;
use crate::error::{Error, Result};
use crate::sync::many::sealed::WaitSource;
use crate::sync::many::{Armed, Readiness};
use crate::sync::reactor::Wait;

impl<T, C: Codec<T>> WaitSource for Queue<T, C> {
    fn readiness(&self) -> Readiness {
        self.chan.readiness(Side::Get)
    }
    fn arm(&self) -> Armed {
        self.chan.arm(Side::Get)
    }
}

impl<T, C: Codec<T>> WaitSource for JoinableQueue<T, C> {
    fn readiness(&self) -> Readiness {
        (**self).readiness()
    }
    fn arm(&self) -> Armed {
        (**self).arm()
    }
}

/// A queue's put side: room to put, or closed.
struct PutSide<'a, T, C>(&'a Queue<T, C>);

impl<T, C: Codec<T>> WaitSource for PutSide<'_, T, C> {
    fn readiness(&self) -> Readiness {
        self.0.chan.readiness(Side::Put)
    }
    fn arm(&self) -> Armed {
        self.0.chan.arm(Side::Put)
    }
}

/// A joinable queue's count of unfinished tasks: ready at 0 (or after an
/// immediate shutdown).
struct Unfinished<'a, T, C>(&'a Queue<T, C>);

impl<T, C: Codec<T>> WaitSource for Unfinished<'_, T, C> {
    fn readiness(&self) -> Readiness {
        if tasks::unfinished(&self.0.chan) == 0 || self.0.chan.is_discarding() {
            Readiness::Ready
        } else {
            Readiness::Pending
        }
    }
    fn arm(&self) -> Armed {
        Armed::counted(tasks::count(&self.0.chan), self.0.chan.seg.clone())
    }
}

impl<T, C: Codec<T>> Queue<T, C> {
    /// [`get`](Self::get) as a future, for any executor (tokio, smol, ...):
    /// it waits without blocking a thread, in the process's one reactor
    /// thread (started by the first future that has to wait).
    ///
    /// Cancel-safe: dropping the future before it returned an item leaves
    /// the item queued. A ready future does what `try_get` does, no syscall.
    /// A message larger than a slot, once at the head, streams in within one
    /// poll.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    ///
    /// # Examples
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let w = std::task::Waker::noop();
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut std::task::Context::from_waker(w)) { return v; } }
    /// # }
    /// let q = shmproc::Queue::<String>::new(4)?;
    /// q.put(&"job".into())?;
    /// assert_eq!(block_on(q.get_async())?, "job");
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn get_async(&self) -> impl Future<Output = Result<T>> + Send + '_
    where
        T: Send,
    {
        Wait::new(self, |q: &&Self, _slow| match q.get_until(Until::Poll) {
            Err(Error::Empty) => None,
            r => Some(r),
        })
    }

    /// [`put`](Self::put) as a future (see [`get_async`](Self::get_async)).
    ///
    /// Cancel-safe: a future dropped before it completed put nothing (a
    /// message larger than a slot streams within one poll).
    ///
    /// # Errors
    /// As [`put`](Self::put).
    ///
    /// # Examples
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let w = std::task::Waker::noop();
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut std::task::Context::from_waker(w)) { return v; } }
    /// # }
    /// let q = shmproc::Queue::<u32>::new(1)?;
    /// block_on(q.put_async(&7))?;
    /// assert_eq!(q.get()?, 7);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn put_async<'a>(&'a self, item: &'a T) -> impl Future<Output = Result<()>> + Send + 'a
    where
        T: Sync,
    {
        Wait::new(PutSide(self), move |p: &PutSide<'_, T, C>, _slow| {
            match p.0.put_until(item, Until::Poll) {
                Err(Error::Full) => None,
                r => Some(r),
            }
        })
    }
}

impl<T, C: Codec<T>> JoinableQueue<T, C> {
    /// [`join`](Self::join) as a future (see [`Queue::get_async`]).
    ///
    /// # Errors
    /// None today, as `join`.
    ///
    /// # Examples
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let w = std::task::Waker::noop();
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut std::task::Context::from_waker(w)) { return v; } }
    /// # }
    /// let q = shmproc::JoinableQueue::<u32>::new(4)?;
    /// q.put(&1)?;
    /// q.get()?;
    /// q.task_done()?;
    /// block_on(q.join_async())?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn join_async(&self) -> impl Future<Output = Result<()>> + Send + '_ {
        Wait::new(Unfinished(self), |u: &Unfinished<'_, T, C>, _slow| {
            (u.readiness() == Readiness::Ready).then_some(Ok(()))
        })
    }
}

#[cfg(feature = "stream")]
impl<T: Send, C: Codec<T>> Queue<T, C> {
    /// The items this handle gets, as a `futures_core::Stream` (feature
    /// `stream`): each is a [`get_async`](Self::get_async); the stream ends
    /// when the queue is closed and drained.
    pub fn stream(&self) -> crate::ItemStream<'_, T> {
        crate::sync::reactor::ItemStream::new(move || Box::pin(self.get_async()))
    }
}
