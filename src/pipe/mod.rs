//! `Pipe`: a pair of connections (Python's `multiprocessing.Pipe`).
//!
//! Each direction is one ring segment (the queue's ring used by one sender
//! and one receiver) plus tables of the processes holding each end, so a
//! receiver whose sender dropped its last handle or died gets the buffered
//! messages and then `Closed`. See `docs/protocols/pipe.md`.
//!
//! - `create.rs`: [`Pipe`] and [`PipeBuilder`] (the ends' segments);
//! - `ends.rs`: which processes hold each end (`forked.rs`: the ends a
//!   forked child captured); `oneway.rs`: [`Receiver`]
//!   and [`Sender`] calls; `transfer.rs`: ends passed to other processes;
//! - here: [`Connection`], its send/receive calls and `poll`.

mod aio;
mod create;
mod ends;
pub(crate) mod forked;
mod oneway;
mod transfer;

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::chan::block::Until;
use crate::chan::codec::{fingerprint, Codec, Serde};
use crate::chan::Chan;
use crate::error::{Error, Result};
use crate::segment::{Kind, Segment};
use ends::{register, End, Role};

pub use create::{Pipe, PipeBuilder};

/// One end of a pipe: sends to and receives from the other end.
///
/// Clone it to use it from several threads; pass it to a spawned process as
/// an argument. When every handle of the other end is dropped, or its process
/// dies, `recv` returns what was buffered and then `Closed`, and `send`
/// returns `Closed`.
/// # Examples
/// ```
/// # let (a, b) = shmproc::Pipe::duplex::<String>();
/// a.send(&"x".into())?;
/// assert!(b.poll(std::time::Duration::from_millis(5)));
/// assert_eq!(b.recv()?, "x");
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct Connection<T, C = Serde> {
    tx: Option<End>,
    rx: Option<End>,
    _t: PhantomData<fn() -> (T, C)>,
}

/// The receiving end of a one-way pipe (same receive methods as [`Connection`]).
/// # Examples
/// ```
/// let (rx, tx) = shmproc::Pipe::simplex::<u8>();
/// drop(tx); // the other end is gone
/// assert!(matches!(rx.recv(), Err(shmproc::Error::Closed)));
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct Receiver<T, C = Serde>(Connection<T, C>);
/// The sending end of a one-way pipe (same send methods as [`Connection`]).
/// # Examples
/// ```
/// let (rx, tx) = shmproc::Pipe::simplex::<u8>();
/// tx.send(&1)?;
/// assert_eq!(rx.recv()?, 1);
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct Sender<T, C = Serde>(Connection<T, C>);

impl<T, C> Clone for Connection<T, C> {
    fn clone(&self) -> Self {
        Connection {
            tx: self.tx.clone(),
            rx: self.rx.clone(),
            _t: PhantomData,
        }
    }
}
impl<T, C> Clone for Receiver<T, C> {
    fn clone(&self) -> Self {
        Receiver(self.0.clone())
    }
}
impl<T, C> Clone for Sender<T, C> {
    fn clone(&self) -> Self {
        Sender(self.0.clone())
    }
}

impl<T, C> std::fmt::Debug for Connection<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("sends", &self.tx.is_some())
            .field("receives", &self.rx.is_some())
            .finish()
    }
}
impl<T, C> std::fmt::Debug for Receiver<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Receiver").field(&self.0).finish()
    }
}
impl<T, C> std::fmt::Debug for Sender<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Sender").field(&self.0).finish()
    }
}

impl<T, C: Codec<T>> Connection<T, C> {
    /// Connects to a named pipe end created with [`PipeBuilder::listen`], with
    /// codec `C` (see [`Pipe::connect`]).
    ///
    /// # Errors
    /// As [`Pipe::connect`].
    ///
    /// # Examples
    /// ```
    /// use shmproc::{Connection, Pipe, Pod};
    /// let name = format!("doc-pipe-connect-{}", std::process::id());
    /// let server = Pipe::builder().name(&name).listen::<u32, Pod>()?;
    /// let client = Connection::<u32, Pod>::connect(&name)?;
    /// client.send(&9)?;
    /// assert_eq!(server.recv()?, 9);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn connect(name: &str) -> Result<Self> {
        let fp = fingerprint::<T, C>();
        let open = |suffix: &str| -> Result<Chan> {
            Chan::open(Segment::open(&format!("{name}.{suffix}"), Kind::Pipe, &fp)?)
        };
        let (ab, ba) = (open("ab")?, open("ba")?);
        Ok(Connection {
            tx: Some(register(ba, Role::Sender)?),
            rx: Some(register(ab, Role::Receiver)?),
            _t: PhantomData,
        })
    }

    pub(super) fn tx(&self) -> Result<&End> {
        self.tx
            .as_ref()
            .ok_or_else(|| Error::invalid("connection", "a sending end", "a receive-only end"))
    }
    pub(super) fn rx(&self) -> Result<&End> {
        self.rx
            .as_ref()
            .ok_or_else(|| Error::invalid("connection", "a receiving end", "a send-only end"))
    }

    fn send_raw(&self, bytes: &[u8]) -> Result<()> {
        let end = self.tx()?;
        self.send_bytes_with(bytes, Until::Forever, &|| end.peer_gone())
    }

    /// Sends `bytes` as `until` allows, `gone` telling whether the other end
    /// is gone.
    fn send_bytes_with(&self, bytes: &[u8], until: Until, gone: &dyn Fn() -> bool) -> Result<()> {
        let end = self.tx()?;
        if !end.peer_registered() {
            return Err(Error::Closed);
        }
        end.chan.put(bytes, until, gone)
    }

    /// Sends `item` as `until` allows (see `send_bytes_with`).
    pub(super) fn send_with(&self, item: &T, until: Until, gone: &dyn Fn() -> bool) -> Result<()> {
        C::encode(item, |b| self.send_bytes_with(b, until, gone))
    }

    fn recv_item(&self, until: Until) -> Result<T> {
        let end = self.rx()?;
        self.recv_item_with(until, &|| end.peer_gone())
    }

    /// Receives as `until` allows, `gone` telling whether the other end is
    /// gone.
    pub(super) fn recv_item_with(&self, until: Until, gone: &dyn Fn() -> bool) -> Result<T> {
        let end = self.rx()?;
        if let Some(v) = end.take_held() {
            return C::decode(&v);
        }
        end.chan
            .get_with(until, gone, &mut |len, fill| C::decode_from(len, fill))
    }

    fn recv_raw(&self, out: &mut Vec<u8>, until: Until) -> Result<()> {
        let end = self.rx()?;
        if let Some(v) = end.take_held() {
            *out = v;
            return Ok(());
        }
        end.chan.get(out, until, &|| end.peer_gone())
    }

    /// Sends an item, blocking while the pipe is full.
    ///
    /// # Errors
    /// `Closed` when the other end is gone; `MessageTooLarge` above a
    /// configured limit; a codec error.
    /// # Examples
    /// ```
    /// # let (a, b) = shmproc::Pipe::duplex::<String>();
    /// a.send(&"hi".into())?;
    /// assert_eq!(b.recv()?, "hi");
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn send(&self, item: &T) -> Result<()> {
        C::encode(item, |b| self.send_raw(b))
    }

    /// Sends a raw byte frame.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    /// # Examples
    /// ```
    /// # let (a, b) = shmproc::Pipe::duplex::<String>();
    /// a.send_bytes(&[1, 2, 3])?;
    /// assert_eq!(b.recv_bytes()?, [1, 2, 3]);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.send_raw(bytes)
    }

    /// Receives the next item, blocking until one comes.
    ///
    /// # Errors
    /// `Closed` when the other end is gone and nothing is buffered; a codec
    /// error for an undecodable message.
    /// # Examples
    /// ```
    /// # let (a, b) = shmproc::Pipe::duplex::<String>();
    /// drop(a);
    /// assert!(matches!(b.recv(), Err(shmproc::Error::Closed))); // never blocks forever
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn recv(&self) -> Result<T> {
        self.recv_item(Until::Forever)
    }

    /// Receives the next item, waiting at most `timeout`.
    ///
    /// # Errors
    /// `Timeout` when nothing came in time; otherwise as [`recv`](Self::recv).
    /// # Examples
    /// ```
    /// # let (a, b) = shmproc::Pipe::duplex::<String>();
    /// assert!(matches!(b.recv_timeout(std::time::Duration::from_millis(5)), Err(shmproc::Error::Timeout)));
    /// # drop(a);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T> {
        self.recv_item(Until::after(timeout))
    }

    /// Receives the next item if one is buffered now.
    ///
    /// # Errors
    /// `Empty` when nothing is buffered; otherwise as [`recv`](Self::recv).
    /// # Examples
    /// ```
    /// # let (a, b) = shmproc::Pipe::duplex::<String>();
    /// assert!(matches!(b.try_recv(), Err(shmproc::Error::Empty)));
    /// # drop(a);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn try_recv(&self) -> Result<T> {
        self.recv_item(Until::Now)
    }

    /// Receives the next message as raw bytes.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    /// # Examples
    /// ```
    /// # let (a, b) = shmproc::Pipe::duplex::<String>();
    /// a.send_bytes(b"raw")?;
    /// assert_eq!(b.recv_bytes()?, b"raw");
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.recv_raw(&mut v, Until::Forever)?;
        Ok(v)
    }

    /// Receives the next message into `buf`; returns its length.
    ///
    /// # Errors
    /// `MessageTooLarge` when the message is longer than `buf`: nothing is
    /// lost, the message stays first for the next receive on this end (Python
    /// raises `BufferTooShort` and hands the message over in the exception);
    /// otherwise as [`recv`](Self::recv).
    /// # Examples
    /// ```
    /// # let (a, b) = shmproc::Pipe::duplex::<String>();
    /// a.send_bytes(b"abc")?;
    /// let mut buf = [0u8; 8];
    /// assert_eq!(b.recv_bytes_into(&mut buf)?, 3);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> Result<usize> {
        let end = self.rx()?;
        let got = match end.take_held() {
            Some(v) if v.len() <= buf.len() => {
                buf[..v.len()].copy_from_slice(&v);
                Ok(v.len())
            }
            Some(v) => Err(v),
            // Straight from the slot into `buf` when it fits: no allocation.
            None => end
                .chan
                .get_with(Until::Forever, &|| end.peer_gone(), &mut |len, fill| {
                    Ok(if len <= buf.len() {
                        fill(&mut buf[..len]);
                        Ok(len)
                    } else {
                        let mut v = vec![0u8; len];
                        fill(&mut v);
                        Err(v)
                    })
                })?,
        };
        got.map_err(|v| {
            let size = v.len();
            end.hold(v);
            Error::MessageTooLarge {
                size,
                max: buf.len(),
            }
        })
    }

    /// Waits up to `timeout` for a message; true when one is ready, or when
    /// `recv` would not block anyway (the other end is gone, or this end
    /// cannot receive), as Python's `poll`.
    /// # Examples
    /// ```
    /// # let (a, b) = shmproc::Pipe::duplex::<String>();
    /// assert!(!b.poll(std::time::Duration::from_millis(5)));
    /// a.send(&"x".into())?;
    /// assert!(b.poll(std::time::Duration::from_millis(5)));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn poll(&self, timeout: Duration) -> bool {
        let Some(end) = self.rx.as_ref() else {
            return true;
        };
        if end.holds() {
            return true;
        }
        end.chan
            .wait_readable(Instant::now().checked_add(timeout), &|| end.peer_gone())
    }
}
