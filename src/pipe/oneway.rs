//! The one-way ends of a simplex pipe: each forwards to the [`Connection`](super::Connection) it wraps.

use std::time::Duration;

use super::{Receiver, Sender};
use crate::chan::codec::Codec;
use crate::error::Result;

impl<T, C: Codec<T>> Receiver<T, C> {
    /// As [`Connection::recv`](crate::Connection::recv).
    ///
    /// # Errors
    /// As [`Connection::recv`](crate::Connection::recv).
    ///
    /// # Examples
    /// ```
    /// let (rx, tx) = shmproc::Pipe::simplex::<String>();
    /// tx.send(&"hi".to_string())?;
    /// assert_eq!(rx.recv()?, "hi");
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn recv(&self) -> Result<T> {
        self.0.recv()
    }

    /// As [`Connection::recv_timeout`](crate::Connection::recv_timeout).
    ///
    /// # Errors
    /// As [`Connection::recv_timeout`](crate::Connection::recv_timeout).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let (rx, _tx) = shmproc::Pipe::simplex::<u8>();
    /// assert!(matches!(rx.recv_timeout(Duration::from_millis(10)), Err(shmproc::Error::Timeout)));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T> {
        self.0.recv_timeout(timeout)
    }

    /// As [`Connection::try_recv`](crate::Connection::try_recv).
    ///
    /// # Errors
    /// As [`Connection::try_recv`](crate::Connection::try_recv).
    ///
    /// # Examples
    /// ```
    /// let (rx, tx) = shmproc::Pipe::simplex::<u8>();
    /// assert!(matches!(rx.try_recv(), Err(shmproc::Error::Empty)));
    /// tx.send(&1)?;
    /// assert_eq!(rx.try_recv()?, 1);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn try_recv(&self) -> Result<T> {
        self.0.try_recv()
    }

    /// As [`Connection::recv_bytes`](crate::Connection::recv_bytes).
    ///
    /// # Errors
    /// As [`Connection::recv_bytes`](crate::Connection::recv_bytes).
    ///
    /// # Examples
    /// ```
    /// let (rx, tx) = shmproc::Pipe::simplex::<Vec<u8>>();
    /// tx.send_bytes(b"frame")?;
    /// assert_eq!(rx.recv_bytes()?, b"frame");
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn recv_bytes(&self) -> Result<Vec<u8>> {
        self.0.recv_bytes()
    }

    /// As [`Connection::recv_bytes_into`](crate::Connection::recv_bytes_into).
    ///
    /// # Errors
    /// As [`Connection::recv_bytes_into`](crate::Connection::recv_bytes_into).
    ///
    /// # Examples
    /// ```
    /// let (rx, tx) = shmproc::Pipe::simplex::<Vec<u8>>();
    /// tx.send_bytes(b"abc")?;
    /// let mut buf = [0u8; 16];
    /// let n = rx.recv_bytes_into(&mut buf)?;
    /// assert_eq!(&buf[..n], b"abc");
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn recv_bytes_into(&self, buf: &mut [u8]) -> Result<usize> {
        self.0.recv_bytes_into(buf)
    }

    /// As [`Connection::poll`](crate::Connection::poll).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let (rx, tx) = shmproc::Pipe::simplex::<u8>();
    /// assert!(!rx.poll(Duration::ZERO));
    /// tx.send(&1)?;
    /// assert!(rx.poll(Duration::from_secs(1)));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn poll(&self, timeout: Duration) -> bool {
        self.0.poll(timeout)
    }
}

impl<T, C: Codec<T>> Sender<T, C> {
    /// As [`Connection::send`](crate::Connection::send).
    ///
    /// # Errors
    /// As [`Connection::send`](crate::Connection::send).
    ///
    /// # Examples
    /// ```
    /// let (rx, tx) = shmproc::Pipe::simplex::<(u8, String)>();
    /// tx.send(&(1, "one".into()))?;
    /// assert_eq!(rx.recv()?, (1, "one".to_string()));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn send(&self, item: &T) -> Result<()> {
        self.0.send(item)
    }

    /// As [`Connection::send_bytes`](crate::Connection::send_bytes).
    ///
    /// # Errors
    /// As [`Connection::send_bytes`](crate::Connection::send_bytes).
    ///
    /// # Examples
    /// ```
    /// let (rx, tx) = shmproc::Pipe::simplex::<Vec<u8>>();
    /// tx.send_bytes(&[0u8; 100_000])?; // any size: large frames stream
    /// assert_eq!(rx.recv_bytes()?.len(), 100_000);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn send_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.0.send_bytes(bytes)
    }
}
