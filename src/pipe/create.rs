//! [`Pipe`] and [`PipeBuilder`]: creating the two ends of a pipe (its ring
//! segments, the ends' registration) and connecting to a named one.

use std::marker::PhantomData;

use super::ends::{register, Role};
use super::{Connection, Receiver, Sender};
use crate::chan::codec::{Codec, Serde};
use crate::chan::spec::RingSpec;
use crate::chan::Chan;
use crate::error::{Error, Result};
use crate::segment::Kind;

/// Creates pipes (Python's `Pipe()`).
/// # Examples
/// ```
/// use shmproc::Pipe;
/// let (a, b) = Pipe::duplex::<String>();
/// a.send(&"ping".to_string())?;
/// assert_eq!(b.recv()?, "ping");
/// b.send(&"pong".to_string())?;
/// assert_eq!(a.recv()?, "pong");
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Pipe;

/// Sizes of a pipe's rings.
/// # Examples
/// ```
/// let (rx, tx) = shmproc::Pipe::builder().capacity(4).slot_size(64).simplex::<Vec<u8>, shmproc::Serde>()?;
/// tx.send(&vec![1, 2])?;
/// assert_eq!(rx.recv()?, [1, 2]);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PipeBuilder {
    spec: RingSpec,
}

impl Pipe {
    /// Two connected ends that both send and receive.
    ///
    /// # Panics
    /// If the two segments cannot be created (no shared memory left, no
    /// descriptors): as Python's `Pipe()` raises `OSError`. To handle that
    /// error, use [`Pipe::builder`]`().duplex()`, which returns it.
    /// # Examples
    /// ```
    /// let (a, b) = shmproc::Pipe::duplex::<String>();
    /// a.send(&"ping".into())?;
    /// assert_eq!(b.recv()?, "ping");
    /// b.send(&"pong".into())?;
    /// assert_eq!(a.recv()?, "pong");
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn duplex<T>() -> (Connection<T>, Connection<T>)
    where
        Serde: Codec<T>,
    {
        Pipe::builder()
            .duplex()
            .unwrap_or_else(|e| panic!("creating a duplex pipe: {e}"))
    }

    /// A one-way pipe: `(receiver, sender)`, Python's `Pipe(duplex=False)`.
    ///
    /// # Panics
    /// If the segment cannot be created; [`Pipe::builder`]`().simplex()`
    /// returns that error instead.
    /// # Examples
    /// ```
    /// let (rx, tx) = shmproc::Pipe::simplex::<u32>();
    /// tx.send(&7)?;
    /// assert_eq!(rx.recv()?, 7);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn simplex<T>() -> (Receiver<T>, Sender<T>)
    where
        Serde: Codec<T>,
    {
        Pipe::builder()
            .simplex()
            .unwrap_or_else(|e| panic!("creating a simplex pipe: {e}"))
    }

    /// A builder for other ring sizes or a [`Pod`](crate::Pod) codec.
    /// # Examples
    /// ```
    /// let (a, b) = shmproc::Pipe::builder().capacity(8).duplex::<u64, shmproc::Pod>()?;
    /// a.send(&1)?;
    /// assert_eq!(b.recv()?, 1);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn builder() -> PipeBuilder {
        PipeBuilder {
            // Half a queue's stream area (DEFAULT_BULK): each direction of
            // a duplex pipe has its own.
            spec: RingSpec::new(64, 1 << 20),
        }
    }

    /// Connects to the named pipe end that another process created with
    /// [`PipeBuilder::listen`] (Python's `multiprocessing.connection.Client`).
    ///
    /// # Errors
    /// `Os` (`ENOENT`) when no such pipe exists, `Incompatible` for another
    /// item type, `Corrupt` for a bad segment.
    /// # Examples
    /// ```
    /// let name = format!("doc-pipe-{}", std::process::id());
    /// let server = shmproc::Pipe::builder().name(&name).listen::<String, shmproc::Serde>()?;
    /// let client = shmproc::Pipe::connect::<String>(&name)?; // e.g. another process
    /// client.send(&"hello".into())?;
    /// assert_eq!(server.recv()?, "hello");
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn connect<T>(name: &str) -> Result<Connection<T>>
    where
        Serde: Codec<T>,
    {
        Connection::connect(name)
    }
}

impl PipeBuilder {
    /// Messages each direction buffers before `send` blocks (default 64).
    ///
    /// # Examples
    /// ```
    /// let (a, b) = shmproc::Pipe::builder().capacity(8).duplex::<u32, shmproc::Serde>()?;
    /// for i in 0..8 { a.send(&i)?; } // fits without a reader
    /// assert_eq!(b.recv()?, 0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn capacity(mut self, n: usize) -> Self {
        self.spec.cap = n as u64;
        self
    }
    /// Inline bytes per message slot (larger messages stream).
    ///
    /// # Examples
    /// ```
    /// let (rx, tx) = shmproc::Pipe::builder().slot_size(64).simplex::<Vec<u8>, shmproc::Serde>()?;
    /// tx.send_bytes(&[1u8; 1000])?; // larger than a slot: streamed
    /// assert_eq!(rx.recv_bytes()?.len(), 1000);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn slot_size(mut self, bytes: usize) -> Self {
        self.spec.set_slot_size(bytes);
        self
    }
    /// Bytes of the stream area for large messages (0: none).
    ///
    /// # Examples
    /// ```
    /// let (rx, tx) = shmproc::Pipe::builder().slot_size(64).bulk_size(0).simplex::<Vec<u8>, shmproc::Serde>()?;
    /// // Without a stream area a message must fit in one slot.
    /// assert!(matches!(tx.send_bytes(&[0u8; 1000]), Err(shmproc::Error::MessageTooLarge { .. })));
    /// # drop(rx);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn bulk_size(mut self, bytes: usize) -> Self {
        self.spec.set_bulk_size(bytes);
        self
    }
    /// Hard limit on one message (`MessageTooLarge` above it).
    ///
    /// # Examples
    /// ```
    /// let (rx, tx) = shmproc::Pipe::builder().max_message(4096).simplex::<Vec<u8>, shmproc::Serde>()?;
    /// assert!(matches!(tx.send_bytes(&[0u8; 5000]), Err(shmproc::Error::MessageTooLarge { size: 5000, max: 4096 })));
    /// tx.send_bytes(&[0u8; 4000])?;
    /// assert_eq!(rx.recv_bytes()?.len(), 4000);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.spec.max_message = bytes as u64;
        self
    }

    /// Names the pipe's segments (`<name>.ab` and `<name>.ba`) so unrelated
    /// processes can reach them; see [`listen`](Self::listen).
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-pipe-name-{}", std::process::id());
    /// let end = shmproc::Pipe::builder().name(&name).listen::<u8, shmproc::Serde>()?;
    /// assert!(std::path::Path::new(&format!("/dev/shm/shmproc.{name}.ab")).exists());
    /// # drop(end);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn name(mut self, name: &str) -> Self {
        self.spec.name = Some(name.to_owned());
        self
    }

    /// Keeps named segments after the creator's last handle drops.
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-pipe-persist-{}", std::process::id());
    /// drop(shmproc::Pipe::builder().name(&name).persist(true).listen::<u8, shmproc::Serde>()?);
    /// // Still there for a later `connect`; remove both directions by hand.
    /// shmproc::unlink(&format!("{name}.ab"))?;
    /// shmproc::unlink(&format!("{name}.ba"))?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn persist(mut self, persist: bool) -> Self {
        self.spec.persist = persist;
        self
    }

    /// Creates a named duplex pipe and returns the listening end; another
    /// process gets the other end with [`Pipe::connect`]. Until it connects,
    /// the other end is not gone: sends are buffered, receives wait.
    /// # Examples
    /// ```
    /// use shmproc::{Connection, Pipe};
    /// let name = format!("doc-pipe-{}", std::process::id());
    /// let server: Connection<String> = Pipe::builder().name(&name).listen()?;
    /// let client: Connection<String> = Pipe::connect(&name)?; // usually another process
    /// client.send(&"hi".to_string())?;
    /// assert_eq!(server.recv()?, "hi");
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    ///
    /// # Errors
    /// `InvalidArgument` without a [`name`](Self::name); `Os` (`EEXIST`) when
    /// the name is taken; other errors as [`Pipe::duplex`].
    pub fn listen<T, C: Codec<T>>(self) -> Result<Connection<T, C>> {
        if self.spec.name.is_none() {
            return Err(Error::invalid("pipe name", "a name to listen on", "none"));
        }
        let ab = self.ring::<T, C>("ab")?;
        let ba = self.ring::<T, C>("ba")?;
        Ok(Connection {
            tx: Some(register(ab, Role::Sender)?),
            rx: Some(register(ba, Role::Receiver)?),
            _t: PhantomData,
        })
    }

    fn ring<T, C: Codec<T>>(&self, suffix: &str) -> Result<Chan> {
        self.spec.create::<T, C>(Kind::Pipe, Some(suffix))
    }

    /// A duplex pipe with codec `C`.
    ///
    /// # Errors
    /// `Os` errors from creating the two segments (where [`Pipe::duplex`]
    /// panics), or the builder's settings rejected.
    ///
    /// # Examples
    /// ```
    /// use shmproc::{Pipe, Pod};
    /// let (a, b) = Pipe::builder().duplex::<u64, Pod>()?; // zero-copy Pod codec
    /// a.send(&7)?;
    /// assert_eq!(b.recv()?, 7);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn duplex<T, C: Codec<T>>(self) -> Result<(Connection<T, C>, Connection<T, C>)> {
        let ab = self.ring::<T, C>("ab")?;
        let ba = self.ring::<T, C>("ba")?;
        let a = Connection {
            tx: Some(register(ab.clone(), Role::Sender)?),
            rx: Some(register(ba.clone(), Role::Receiver)?),
            _t: PhantomData,
        };
        let b = Connection {
            tx: Some(register(ba, Role::Sender)?),
            rx: Some(register(ab, Role::Receiver)?),
            _t: PhantomData,
        };
        Ok((a, b))
    }

    /// A one-way pipe with codec `C`: `(receiver, sender)`.
    ///
    /// # Errors
    /// `Os` errors from creating the segment (where [`Pipe::simplex`]
    /// panics), or the builder's settings rejected.
    ///
    /// # Examples
    /// ```
    /// use shmproc::{Pipe, Pod};
    /// let (rx, tx) = Pipe::builder().simplex::<u32, Pod>()?;
    /// tx.send(&3)?;
    /// assert_eq!(rx.recv()?, 3);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn simplex<T, C: Codec<T>>(self) -> Result<(Receiver<T, C>, Sender<T, C>)> {
        let ring = self.ring::<T, C>("ab")?;
        let tx = Connection {
            tx: Some(register(ring.clone(), Role::Sender)?),
            rx: None,
            _t: PhantomData,
        };
        let rx = Connection {
            tx: None,
            rx: Some(register(ring, Role::Receiver)?),
            _t: PhantomData,
        };
        Ok((Receiver(rx), Sender(tx)))
    }
}
