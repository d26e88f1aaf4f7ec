//! Pipe ends as things to wait for: [`Waitable`](crate::Waitable) (a message
//! can be received, or the other end is gone) and the async calls, futures
//! that sleep in the process's reactor (`sync/reactor.rs`).

use std::future::Future;

use super::{Connection, Receiver, Sender};
use crate::chan::block::Until;
use crate::chan::codec::Codec;
use crate::chan::ring::Side;
use crate::error::{Error, Result};
use crate::sync::many::sealed::WaitSource;
use crate::sync::many::{Armed, Readiness};
use crate::sync::reactor::Wait;

impl<T, C: Codec<T>> WaitSource for Connection<T, C> {
    fn readiness(&self) -> Readiness {
        match self.rx() {
            // A send-only end: a receive fails at once.
            Err(_) => Readiness::Ready,
            Ok(end) if end.holds() => Readiness::Ready,
            Ok(end) => match end.chan.readiness(Side::Get) {
                Readiness::Pending if end.peer_dropped() => Readiness::Ready,
                r => r,
            },
        }
    }
    fn ready_slow(&self) -> bool {
        self.readiness() == Readiness::Ready || self.rx().is_ok_and(|end| end.peer_gone())
    }
    fn arm(&self) -> Armed {
        match self.rx() {
            Ok(end) => end.chan.arm(Side::Get),
            // Never slept on: readiness says Ready.
            Err(_) => Armed::plain(&NEVER, 0, ()),
        }
    }
}

/// A word nothing changes (for an end that is always ready).
static NEVER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl<T, C: Codec<T>> WaitSource for Receiver<T, C> {
    fn readiness(&self) -> Readiness {
        self.0.readiness()
    }
    fn ready_slow(&self) -> bool {
        self.0.ready_slow()
    }
    fn arm(&self) -> Armed {
        self.0.arm()
    }
}

/// A connection's sending side: room to send, or the other end gone.
struct SendSide<'a, T, C>(&'a Connection<T, C>);

impl<T, C: Codec<T>> WaitSource for SendSide<'_, T, C> {
    fn readiness(&self) -> Readiness {
        match self.0.tx() {
            Err(_) => Readiness::Ready,
            Ok(end) => end.chan.readiness(Side::Put),
        }
    }
    fn arm(&self) -> Armed {
        match self.0.tx() {
            Ok(end) => end.chan.arm(Side::Put),
            Err(_) => Armed::plain(&NEVER, 0, ()),
        }
    }
}

impl<T, C: Codec<T>> Connection<T, C> {
    /// [`recv`](Self::recv) as a future, for any executor: it waits without
    /// blocking a thread, in the process's one reactor thread. Cancel-safe:
    /// a future dropped before it returned a message leaves it buffered.
    /// When the other end is gone (dropped, or its process died) it returns
    /// what is buffered, then `Closed`.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let w = std::task::Waker::noop();
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut std::task::Context::from_waker(w)) { return v; } }
    /// # }
    /// let (a, b) = shmproc::Pipe::duplex::<String>();
    /// block_on(a.send_async(&"ping".into()))?;
    /// assert_eq!(block_on(b.recv_async())?, "ping");
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn recv_async(&self) -> impl Future<Output = Result<T>> + Send + '_
    where
        T: Send,
    {
        Wait::new(self, |c: &&Self, slow| {
            // Whether the other end is gone may read /proc: only when woken
            // at a slice end or by a change, never on the first attempt.
            let gone = || slow && c.rx().is_ok_and(|end| end.peer_gone());
            match c.recv_item_with(Until::Poll, &gone) {
                Err(Error::Empty) => None,
                r => Some(r),
            }
        })
    }

    /// [`send`](Self::send) as a future (see [`recv_async`](Self::recv_async)).
    /// Cancel-safe: a future dropped before it completed sent nothing.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// # Examples
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let w = std::task::Waker::noop();
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut std::task::Context::from_waker(w)) { return v; } }
    /// # }
    /// let (a, b) = shmproc::Pipe::duplex::<u32>();
    /// block_on(b.send_async(&3))?;
    /// assert_eq!(a.recv()?, 3);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn send_async<'a>(&'a self, item: &'a T) -> impl Future<Output = Result<()>> + Send + 'a
    where
        T: Sync,
    {
        Wait::new(SendSide(self), move |s: &SendSide<'_, T, C>, slow| {
            let gone = || slow && s.0.tx().is_ok_and(|end| end.peer_gone());
            match s.0.send_with(item, Until::Poll, &gone) {
                Err(Error::Full) => None,
                r => Some(r),
            }
        })
    }
}

impl<T, C: Codec<T>> Receiver<T, C> {
    /// [`Connection::recv_async`] on a one-way pipe's receiving end.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let w = std::task::Waker::noop();
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut std::task::Context::from_waker(w)) { return v; } }
    /// # }
    /// let (rx, tx) = shmproc::Pipe::simplex::<u8>();
    /// tx.send(&1)?;
    /// drop(tx);
    /// assert_eq!(block_on(rx.recv_async())?, 1);
    /// assert!(matches!(block_on(rx.recv_async()), Err(shmproc::Error::Closed)));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn recv_async(&self) -> impl Future<Output = Result<T>> + Send + '_
    where
        T: Send,
    {
        self.0.recv_async()
    }
}

impl<T, C: Codec<T>> Sender<T, C> {
    /// [`Connection::send_async`] on a one-way pipe's sending end.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    ///
    /// # Examples
    /// ```
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     let mut f = std::pin::pin!(f);
    /// #     let w = std::task::Waker::noop();
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut std::task::Context::from_waker(w)) { return v; } }
    /// # }
    /// let (rx, tx) = shmproc::Pipe::simplex::<u8>();
    /// block_on(tx.send_async(&2))?;
    /// assert_eq!(rx.recv()?, 2);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn send_async<'a>(&'a self, item: &'a T) -> impl Future<Output = Result<()>> + Send + 'a
    where
        T: Sync,
    {
        self.0.send_async(item)
    }
}

#[cfg(feature = "stream")]
impl<T: Send, C: Codec<T>> Connection<T, C> {
    /// The messages this end receives, as a `futures_core::Stream` (feature
    /// `stream`): each is a [`recv_async`](Self::recv_async); the stream
    /// ends when the other end is gone and nothing is buffered.
    pub fn stream(&self) -> crate::ItemStream<'_, T> {
        crate::sync::reactor::ItemStream::new(move || Box::pin(self.recv_async()))
    }
}

#[cfg(feature = "stream")]
impl<T: Send, C: Codec<T>> Receiver<T, C> {
    /// The messages this end receives, as a `futures_core::Stream` (see
    /// [`Connection::stream`]).
    pub fn stream(&self) -> crate::ItemStream<'_, T> {
        self.0.stream()
    }
}
