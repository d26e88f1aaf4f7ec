//! `Pipe`: a pair of connections (Python's `multiprocessing.Pipe`).
//!
//! Each direction is one ring segment (the queue's ring used by one sender
//! and one receiver) plus tables of the processes holding each end, so a
//! receiver whose sender dropped its last handle or died gets the buffered
//! messages and then `Closed`. See `docs/protocols/pipe.md`.

mod ends;
mod oneway;

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::queue::block::{Until, NAP_MIN, SLICE};
use crate::queue::chan::Chan;
use crate::queue::codec::{Codec, Serde};
use crate::queue::layout::{Geometry, MAX_MESSAGE};
use crate::queue::ring::Side;
use crate::segment::{Kind, Placement, Segment, Wire};
use crate::sync::wait::Futex;
use ends::{register, End, Role};

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
    capacity: u64,
    slot_size: Option<u64>,
    bulk_size: u64,
    max_message: u64,
    name: Option<String>,
    persist: bool,
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
            capacity: 64,
            slot_size: None,
            bulk_size: 256 * 1024,
            max_message: MAX_MESSAGE,
            name: None,
            persist: false,
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
    /// let name = shmproc::segment::unique_name("doc-pipe");
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
        self.capacity = n as u64;
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
        self.slot_size = Some((bytes as u64).div_ceil(8) * 8);
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
        self.bulk_size = (bytes as u64).div_ceil(8) * 8;
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
        self.max_message = bytes as u64;
        self
    }

    /// Names the pipe's segments (`<name>.ab` and `<name>.ba`) so unrelated
    /// processes can reach them; see [`listen`](Self::listen).
    ///
    /// # Examples
    /// ```
    /// let name = shmproc::segment::unique_name("doc-pipe-name");
    /// let end = shmproc::Pipe::builder().name(&name).listen::<u8, shmproc::Serde>()?;
    /// assert!(std::path::Path::new(&format!("/dev/shm/shmproc.{name}.ab")).exists());
    /// # drop(end);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Keeps named segments after the creator's last handle drops.
    ///
    /// # Examples
    /// ```
    /// let name = shmproc::segment::unique_name("doc-pipe-persist");
    /// drop(shmproc::Pipe::builder().name(&name).persist(true).listen::<u8, shmproc::Serde>()?);
    /// // Still there for a later `connect`; remove both directions by hand.
    /// shmproc::unlink(&format!("{name}.ab"))?;
    /// shmproc::unlink(&format!("{name}.ba"))?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn persist(mut self, persist: bool) -> Self {
        self.persist = persist;
        self
    }

    /// Creates a named duplex pipe and returns the listening end; another
    /// process gets the other end with [`Pipe::connect`]. Until it connects,
    /// the other end is not gone: sends are buffered, receives wait.
    /// # Examples
    /// ```
    /// use shmproc::{Connection, Pipe};
    /// let name = shmproc::segment::unique_name("doc-pipe");
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
        if self.name.is_none() {
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
        let place = Placement {
            name: self.name.as_ref().map(|n| format!("{n}.{suffix}")),
            persist: self.persist,
        };
        let geo = Geometry {
            cap: self.capacity,
            data_size: self.slot_size.unwrap_or_else(C::default_slot),
            bulk_len: self.bulk_size,
            max_message: self.max_message,
        };
        Chan::create(
            Kind::Pipe,
            crate::queue::api::fingerprint::<T, C>(),
            geo,
            &place,
        )
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
    /// let name = shmproc::segment::unique_name("doc-pipe-connect");
    /// let server = Pipe::builder().name(&name).listen::<u32, Pod>()?;
    /// let client = Connection::<u32, Pod>::connect(&name)?;
    /// client.send(&9)?;
    /// assert_eq!(server.recv()?, 9);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn connect(name: &str) -> Result<Self> {
        let fp = crate::queue::api::fingerprint::<T, C>();
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

    fn tx(&self) -> Result<&End> {
        self.tx
            .as_ref()
            .ok_or_else(|| Error::invalid("connection", "a sending end", "a receive-only end"))
    }
    fn rx(&self) -> Result<&End> {
        self.rx
            .as_ref()
            .ok_or_else(|| Error::invalid("connection", "a receiving end", "a send-only end"))
    }

    fn send_raw(&self, bytes: &[u8]) -> Result<()> {
        let end = self.tx()?;
        if !end.peer_registered() {
            return Err(Error::Closed);
        }
        end.chan.put(bytes, Until::Forever, &|| end.peer_gone())
    }

    fn recv_item(&self, until: Until) -> Result<T> {
        let end = self.rx()?;
        if let Some(v) = end.take_held() {
            return C::decode(&v);
        }
        end.chan
            .get_with(until, &|| end.peer_gone(), &mut |len, fill| {
                C::decode_from(len, fill)
            })?
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
                    if len <= buf.len() {
                        fill(&mut buf[..len]);
                        Ok(len)
                    } else {
                        let mut v = vec![0u8; len];
                        fill(&mut v);
                        Err(v)
                    }
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
        let ring = end.chan.ring();
        let start = Instant::now();
        let deadline = start.checked_add(timeout);
        loop {
            if ring.peek_ready() {
                return true;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return end.peer_gone() || ring.peek_ready();
            }
            if now.duration_since(start) < POLL_SPIN {
                std::hint::spin_loop();
                continue;
            }
            // Only before sleeping: it may read /proc.
            if end.peer_gone() {
                return true;
            }
            let slice = now + SLICE;
            let end_at = deadline.map_or(slice, |d| d.min(slice));
            let nap = now.duration_since(start).clamp(NAP_MIN, SLICE);
            ring.wait_slice(Side::Get, &Futex, Some(end_at), now + nap, || ring.peek());
        }
    }
}

/// How long `poll` spins before sleeping.
const POLL_SPIN: Duration = Duration::from_micros(20);

// ---- handle transfer ----

struct Handle<'a>(Option<&'a End>);

impl Serialize for Handle<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        match self.0 {
            None => s.serialize_none(),
            Some(e) => {
                let wire = e.chan.seg.to_wire().map_err(S::Error::custom)?;
                if matches!(wire, Wire::Inherited(_)) {
                    ends::send_in_transit(&e.chan, e.role);
                }
                s.serialize_some(&wire)
            }
        }
    }
}

impl<T, C: Codec<T>> Serialize for Connection<T, C> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (Handle(self.tx.as_ref()), Handle(self.rx.as_ref())).serialize(s)
    }
}

fn open_end<T, C: Codec<T>>(w: Option<Wire>, role: Role) -> Result<Option<End>> {
    let Some(w) = w else { return Ok(None) };
    let seg = Segment::from_wire(w, Kind::Pipe, &crate::queue::api::fingerprint::<T, C>())?;
    Ok(Some(ends::register_received(Chan::open(seg)?, role)?))
}

impl<'de, T, C: Codec<T>> Deserialize<'de> for Connection<T, C> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let (tx, rx) = <(Option<Wire>, Option<Wire>)>::deserialize(d)?;
        Ok(Connection {
            tx: open_end::<T, C>(tx, Role::Sender).map_err(D::Error::custom)?,
            rx: open_end::<T, C>(rx, Role::Receiver).map_err(D::Error::custom)?,
            _t: PhantomData,
        })
    }
}

impl<T, C: Codec<T>> Serialize for Receiver<T, C> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
impl<'de, T, C: Codec<T>> Deserialize<'de> for Receiver<T, C> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let c = Connection::deserialize(d)?;
        if c.rx.is_none() || c.tx.is_some() {
            return Err(D::Error::custom(
                "expected a pipe receiver, found another end",
            ));
        }
        Ok(Receiver(c))
    }
}
impl<T, C: Codec<T>> Serialize for Sender<T, C> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
impl<'de, T, C: Codec<T>> Deserialize<'de> for Sender<T, C> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let c = Connection::deserialize(d)?;
        if c.tx.is_none() || c.rx.is_some() {
            return Err(D::Error::custom(
                "expected a pipe sender, found another end",
            ));
        }
        Ok(Sender(c))
    }
}
