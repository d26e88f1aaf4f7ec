//! The public `Queue` type and its builder.

use std::marker::PhantomData;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::tasks;
use crate::chan::block::Until;
use crate::chan::codec::{fingerprint, Codec, Serde};
use crate::chan::spec::RingSpec;
use crate::chan::Chan;
use crate::error::Result;
use crate::segment::{Kind, Segment};

/// Bulk stream size when a builder does not say: room for a 1 MiB message
/// and the next one, so the producer writes one while the consumer reads the
/// other (512 KiB halved the bandwidth of 1 MiB messages: the two sides
/// took turns). Pages of a segment are only allocated once written, so a
/// queue that never streams a large message does not pay for it.
const DEFAULT_BULK: u64 = 2 << 20;

fn never_gone() -> bool {
    false
}

/// A bounded multi-producer multi-consumer queue in shared memory (Python's
/// `multiprocessing.Queue`). Each item goes to exactly one consumer; items
/// from one producer arrive in the order it put them.
///
/// `C` chooses the encoding: [`Serde`] (default, postcard, any size) or
/// [`Pod`](super::Pod) (a plain copy of a `bytemuck::Pod` item; see
/// [`PodQueue`](super::PodQueue)). Messages larger than a slot stream through
/// the queue's bulk area, so any size passes (up to `max_message`).
///
/// Handles are cheap to clone and can be passed to spawned processes.
///
/// # Examples
/// ```
/// use shmproc::Queue;
/// let q: Queue<String> = Queue::new(8)?;
/// q.put(&"hello".to_string())?;
/// assert_eq!(q.get()?, "hello");
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct Queue<T, C = Serde> {
    pub(crate) chan: Chan,
    joinable: bool,
    _t: PhantomData<fn() -> (T, C)>,
}

impl<T, C> Clone for Queue<T, C> {
    fn clone(&self) -> Self {
        Queue {
            chan: self.chan.clone(),
            joinable: self.joinable,
            _t: PhantomData,
        }
    }
}

impl<T, C> std::fmt::Debug for Queue<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.chan.seg.name())
            .field("capacity", &self.chan.geo.cap)
            .field("len", &self.chan.ring().len())
            .finish()
    }
}

/// Builds a [`Queue`] (or a `JoinableQueue`): name, size and limits.
///
/// # Examples
/// ```
/// use shmproc::Queue;
/// let name = format!("doc-builder-{}", std::process::id());
/// let q: Queue<u32> = Queue::builder().name(&name).maxsize(16).create()?;
/// let other: Queue<u32> = Queue::open(&name)?;
/// q.put(&7)?;
/// assert_eq!(other.get()?, 7);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct QueueBuilder<T, C = Serde> {
    spec: RingSpec,
    _t: PhantomData<fn() -> (T, C)>,
}

impl<T, C: Codec<T>> QueueBuilder<T, C> {
    fn new() -> Self {
        QueueBuilder {
            spec: RingSpec::new(1024, DEFAULT_BULK),
            _t: PhantomData,
        }
    }

    /// Names the queue so unrelated processes can [`Queue::open`] it.
    /// # Examples
    /// ```
    /// let name = format!("doc-q-{}", std::process::id());
    /// let q = shmproc::Queue::<String>::builder().name(&name).create()?;
    /// shmproc::Queue::<String>::open(&name)?.put(&"hi".into())?; // elsewhere
    /// assert_eq!(q.get()?, "hi");
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn name(mut self, name: &str) -> Self {
        self.spec.name = Some(name.to_owned());
        self
    }

    /// Keeps a named queue after its creator's last handle drops.
    /// # Examples
    /// ```
    /// let name = format!("doc-q-persist-{}", std::process::id());
    /// drop(shmproc::PodQueue::<u8>::builder().name(&name).persist(true).create()?);
    /// shmproc::unlink(&name)?; // it outlived its creator's handles
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn persist(mut self, persist: bool) -> Self {
        self.spec.persist = persist;
        self
    }

    /// Maximum number of items queued (Python's `maxsize`), default 1024.
    /// # Examples
    /// ```
    /// assert_eq!(shmproc::PodQueue::<u8>::builder().maxsize(3).create()?.capacity(), 3);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn maxsize(mut self, n: usize) -> Self {
        self.spec.cap = n as u64;
        self
    }

    /// Bytes of each slot's inline data (rounded up to 8): messages up to
    /// this size travel inline; larger ones stream through the bulk area.
    /// # Examples
    /// ```
    /// let q = shmproc::Queue::<String>::builder().slot_size(256).create()?;
    /// q.put(&"x".repeat(200))?; // inline, one slot
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn slot_size(mut self, bytes: usize) -> Self {
        self.spec.set_slot_size(bytes);
        self
    }

    /// Bytes of the bulk area that larger messages stream through (default
    /// 2 MiB; 0 makes messages larger than a slot fail with
    /// `MessageTooLarge`).
    /// # Examples
    /// ```
    /// let q = shmproc::Queue::<Vec<u8>>::builder().bulk_size(1 << 20).create()?;
    /// q.put(&vec![7; 100_000])?; // through the bulk stream
    /// assert_eq!(q.get()?.len(), 100_000);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn bulk_size(mut self, bytes: usize) -> Self {
        self.spec.set_bulk_size(bytes);
        self
    }

    /// Hard limit on one message's encoded size (default 1 TiB): larger ones
    /// fail with `MessageTooLarge`.
    /// # Examples
    /// ```
    /// let q = shmproc::Queue::<Vec<u8>>::builder().max_message(1000).create()?;
    /// assert!(matches!(q.put(&vec![0; 5000]), Err(shmproc::Error::MessageTooLarge { .. })));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn max_message(mut self, bytes: usize) -> Self {
        self.spec.max_message = bytes as u64;
        self
    }

    pub(crate) fn create_kind(self, joinable: bool) -> Result<Queue<T, C>> {
        let kind = if joinable {
            Kind::JoinableQueue
        } else {
            Kind::Queue
        };
        let chan = self.spec.create::<T, C>(kind, None)?;
        Ok(Queue {
            chan,
            joinable,
            _t: PhantomData,
        })
    }

    /// Creates the queue.
    ///
    /// # Errors
    /// `InvalidArgument` for a size of 0 or out of range, `Os` (`EEXIST`) when
    /// the name is taken, other `Os` errors from creating the segment.
    /// # Examples
    /// ```
    /// let q = shmproc::PodQueue::<u64>::builder().maxsize(8).create()?;
    /// assert!(q.is_empty());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn create(self) -> Result<Queue<T, C>> {
        self.create_kind(false)
    }
}

impl<T, C: Codec<T>> Queue<T, C> {
    /// An anonymous queue holding at most `maxsize` items.
    ///
    /// # Errors
    /// `InvalidArgument` if `maxsize` is 0 or above 2^24; `Os` errors from
    /// creating the segment.
    /// # Examples
    /// ```
    /// let q = shmproc::Queue::<String>::new(16)?;
    /// q.put(&"job".to_string())?; assert_eq!(q.get()?, "job");
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new(maxsize: usize) -> Result<Self> {
        Self::builder().maxsize(maxsize).create()
    }

    /// A builder for named queues and other sizes.
    /// # Examples
    /// ```
    /// let q = shmproc::PodQueue::<u32>::builder().maxsize(2).create()?;
    /// assert_eq!(q.capacity(), 2);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn builder() -> QueueBuilder<T, C> {
        QueueBuilder::new()
    }

    /// Opens the named queue `name` created by another process.
    ///
    /// # Errors
    /// `Os` (`ENOENT`) if there is no such queue, `Incompatible` if it is
    /// another kind or item type, `Corrupt` if its header or geometry is bad.
    /// # Examples
    /// ```
    /// let name = format!("doc-q-open-{}", std::process::id());
    /// let _q = shmproc::PodQueue::<u8>::builder().name(&name).create()?;
    /// assert!(shmproc::PodQueue::<u16>::open(&name).is_err()); // another item type
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Self> {
        Self::open_kind(name, false)
    }

    pub(crate) fn open_kind(name: &str, joinable: bool) -> Result<Self> {
        let kind = if joinable {
            Kind::JoinableQueue
        } else {
            Kind::Queue
        };
        let seg = Segment::open(name, kind, &fingerprint::<T, C>())?;
        Ok(Queue {
            chan: Chan::open(seg)?,
            joinable,
            _t: PhantomData,
        })
    }

    pub(super) fn put_until(&self, item: &T, until: Until) -> Result<()> {
        C::encode(item, |bytes| self.put_bytes_until(bytes, until))
    }

    #[inline]
    fn put_bytes_until(&self, bytes: &[u8], until: Until) -> Result<()> {
        if self.joinable {
            return self.put_joinable(bytes, until);
        }
        self.chan.put(bytes, until, &never_gone)
    }

    #[cold]
    fn put_joinable(&self, bytes: &[u8], until: Until) -> Result<()> {
        tasks::add_one(&self.chan);
        let r = self.chan.put(bytes, until, &never_gone);
        if r.is_err() {
            tasks::done(&self.chan, 1);
        }
        r
    }

    /// Puts an item, blocking while the queue is full.
    ///
    /// A message larger than the stream area (2 MiB unless
    /// [`bulk_size`](QueueBuilder::bulk_size) says otherwise) streams through
    /// it: `put` returns once a consumer has taken all but the last area's
    /// worth of bytes, so it waits for a consumer even on an empty queue
    /// (Python's `put` hands the item to a feeder thread instead). Put such
    /// messages from another thread than the one that gets them.
    ///
    /// # Errors
    /// `Closed` after [`close`](Self::close); `MessageTooLarge` above the
    /// configured limit; a codec error; `Corrupt` if a peer broke the ring.
    /// # Examples
    /// ```
    /// let q = shmproc::Queue::<u64, shmproc::Pod>::new(4)?;
    /// q.put(&1)?;
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    #[inline]
    pub fn put(&self, item: &T) -> Result<()> {
        self.put_until(item, Until::Forever)
    }

    /// Puts an item, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// `Timeout` when no room came in time; otherwise as [`put`](Self::put).
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// for i in 0..4 { q.put(&i)?; }
    /// assert!(matches!(q.put_timeout(&4, std::time::Duration::from_millis(5)), Err(shmproc::Error::Timeout)));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn put_timeout(&self, item: &T, timeout: Duration) -> Result<()> {
        self.put_until(item, Until::after(timeout))
    }

    /// Puts an item if there is room now.
    ///
    /// # Errors
    /// `Full` when there is no room; otherwise as [`put`](Self::put).
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// for i in 0..4 { q.try_put(&i)?; }
    /// assert!(matches!(q.try_put(&4), Err(shmproc::Error::Full)));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn try_put(&self, item: &T) -> Result<()> {
        self.put_until(item, Until::Now)
    }

    /// Puts a raw byte frame (read it back with [`get_bytes`](Self::get_bytes)).
    /// Large frames stream as in [`put`](Self::put).
    ///
    /// # Errors
    /// As [`put`](Self::put).
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// q.put_bytes(&7u32.to_le_bytes())?; assert_eq!(q.get()?, 7);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.put_bytes_until(bytes, Until::Forever)
    }

    /// Puts a raw byte frame if there is room now.
    ///
    /// # Errors
    /// `Full` when there is no room; otherwise as [`put`](Self::put).
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// q.try_put_bytes(&1u32.to_le_bytes())?; assert_eq!(q.get_bytes()?, 1u32.to_le_bytes());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn try_put_bytes(&self, bytes: &[u8]) -> Result<()> {
        self.put_bytes_until(bytes, Until::Now)
    }

    /// Puts a raw byte frame, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// `Timeout` when no room came in time; otherwise as [`put`](Self::put).
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// q.put_bytes_timeout(&2u32.to_le_bytes(), std::time::Duration::from_millis(5))?;
    /// assert_eq!(q.len(), 1);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn put_bytes_timeout(&self, bytes: &[u8], timeout: Duration) -> Result<()> {
        self.put_bytes_until(bytes, Until::after(timeout))
    }

    /// Puts every item of `items` in order, in runs of consecutive slots:
    /// one hint update, fence and wake-up per run of up to 256 items.
    ///
    /// # Errors
    /// As [`put`](Self::put); items before the failing one were put.
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// q.put_many(&[1, 2, 3])?; assert_eq!(q.len(), 3);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn put_many(&self, items: &[T]) -> Result<()> {
        if self.joinable {
            return items.iter().try_for_each(|item| self.put(item));
        }
        self.chan
            .put_batch(items.len(), |i, sink| C::encode(&items[i], |b| sink(b)))
    }

    #[inline]
    pub(super) fn get_until(&self, until: Until) -> Result<T> {
        self.chan.get_with(until, &never_gone, &mut |len, fill| {
            C::decode_from(len, fill)
        })
    }

    /// Takes the next item, blocking while the queue is empty.
    ///
    /// # Errors
    /// `Closed` once the queue is closed and drained; a codec error for an
    /// undecodable message; `Corrupt` if a peer broke the ring.
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// q.put(&5)?; assert_eq!(q.get()?, 5);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    #[inline]
    pub fn get(&self) -> Result<T> {
        self.get_until(Until::Forever)
    }

    /// Takes the next item, waiting at most `timeout` (and, however short
    /// the timeout, for a put already under way, as [`try_get`](Self::try_get)
    /// does).
    ///
    /// # Errors
    /// `Timeout` when nothing came in time; otherwise as [`get`](Self::get).
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// assert!(matches!(q.get_timeout(std::time::Duration::from_millis(5)), Err(shmproc::Error::Timeout)));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn get_timeout(&self, timeout: Duration) -> Result<T> {
        self.get_until(Until::after(timeout))
    }

    /// Takes the next item if there is one now.
    ///
    /// An item whose put is under way in another thread or process (its
    /// slot claimed, not yet published) counts as there: `try_get` waits for
    /// that put to finish, so it never says `Empty` right after a put that
    /// returned. The wait is bounded: a producer that died mid-put is
    /// skipped, one that is alive but stalled for 20 ms (stopped by a signal)
    /// gives `Empty` (`docs/protocols/queue.md`, "In flight").
    ///
    /// # Errors
    /// `Empty` when there is none (or another consumer is streaming a large
    /// message); otherwise as [`get`](Self::get).
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// assert!(matches!(q.try_get(), Err(shmproc::Error::Empty)));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn try_get(&self) -> Result<T> {
        self.get_until(Until::Now)
    }

    /// Takes the next message as raw bytes.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// q.put(&9)?; assert_eq!(q.get_bytes()?, 9u32.to_le_bytes()); // the raw frame
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn get_bytes(&self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.chan.get(&mut v, Until::Forever, &never_gone)?;
        Ok(v)
    }

    /// Takes the next message as raw bytes if there is one now.
    ///
    /// # Errors
    /// `Empty` when there is none; otherwise as [`get`](Self::get).
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// assert!(q.try_get_bytes().is_err());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn try_get_bytes(&self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.chan.get(&mut v, Until::Now, &never_gone)?;
        Ok(v)
    }

    /// Takes the next message as raw bytes, waiting at most `timeout`.
    ///
    /// # Errors
    /// `Timeout` when nothing came in time; otherwise as [`get`](Self::get).
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// q.put(&1)?;
    /// assert_eq!(q.get_bytes_timeout(std::time::Duration::from_millis(5))?.len(), 4);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn get_bytes_timeout(&self, timeout: Duration) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.chan.get(&mut v, Until::after(timeout), &never_gone)?;
        Ok(v)
    }

    /// Blocks for one item, then appends it and up to `max - 1` more that are
    /// ready now to `out`; returns how many were appended.
    ///
    /// # Errors
    /// As [`get`](Self::get) for the first item; later items stop the batch
    /// quietly when none is ready.
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// q.put_many(&[1, 2, 3])?;
    /// let mut out = Vec::new();
    /// assert_eq!(q.get_many(&mut out, 8)?, 3);
    /// assert_eq!(out, [1, 2, 3]);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn get_many(&self, out: &mut Vec<T>, max: usize) -> Result<usize> {
        out.reserve(max.min(1024));
        self.chan.get_batch(
            max,
            Until::Forever,
            &mut |len, fill| C::decode_from(len, fill),
            |item| out.push(item),
        )
    }

    /// Number of items queued now, Python's `qsize`: exact when no put or
    /// get is under way (after concurrent puts have all returned, it counts
    /// every one of them), approximate while others put or get. An item
    /// whose put is under way counts once its slot is claimed.
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// q.put(&1)?; assert_eq!(q.len(), 1);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.chan.ring().len() as usize
    }

    /// Whether no item is queued now (exact when quiet, as [`len`](Self::len)).
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// assert!(q.is_empty());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the queue holds `capacity()` items now (exact when quiet, as
    /// [`len`](Self::len)).
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// q.put_many(&[1, 2, 3, 4])?; assert!(q.is_full());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn is_full(&self) -> bool {
        self.len() as u64 >= self.chan.geo.cap
    }

    /// Maximum number of items (`maxsize`).
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// assert_eq!(q.capacity(), 4);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn capacity(&self) -> usize {
        self.chan.geo.cap as usize
    }

    /// Closes the queue for every process: later puts fail with `Closed`,
    /// gets return what is left and then `Closed`.
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// q.put(&1)?;
    /// q.close(); assert!(matches!(q.put(&2), Err(shmproc::Error::Closed)));
    /// assert_eq!(q.get()?, 1); // what is left drains
    /// assert!(matches!(q.get(), Err(shmproc::Error::Closed)));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn close(&self) {
        self.chan.close();
    }

    /// Python 3.13's `shutdown(immediate)`, for every process: with
    /// `immediate == false` it is [`close`](Self::close); with `true` it also
    /// discards what is queued: gets (and `get_many`) return `Closed` at
    /// once, [`len`](Self::len) is 0, and a [`JoinableQueue::join`](crate::JoinableQueue::join)
    /// returns without waiting for the discarded items. A get already under
    /// way when it happens may still complete. Shutting down cannot be undone.
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// q.put(&1)?;
    /// q.shutdown(true);
    /// assert!(matches!(q.get(), Err(shmproc::Error::Closed))); // 1 was discarded
    /// assert!(matches!(q.put(&2), Err(shmproc::Error::Closed)));
    /// assert_eq!(q.len(), 0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn shutdown(&self, immediate: bool) {
        if immediate {
            self.chan.shut_down();
            if self.joinable {
                tasks::release_joiners(&self.chan);
            }
        } else {
            self.chan.close();
        }
    }

    /// Whether the queue was closed (or shut down).
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// q.close(); assert!(q.is_closed());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        crate::chan::block::is_closed(&self.chan.ring())
    }

    /// The queue's name, if it is named.
    /// # Examples
    /// ```
    /// # let q = shmproc::PodQueue::<u32>::new(4)?;
    /// assert_eq!(q.name(), None); // anonymous
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.chan.seg.name()
    }
}

impl<T, C: Codec<T>> Serialize for Queue<T, C> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.chan.seg.serialize_handle(s)
    }
}

impl<'de, T, C: Codec<T>> Deserialize<'de> for Queue<T, C> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let seg = Segment::deserialize_handle(d, Kind::Queue, &fingerprint::<T, C>())?;
        Ok(Queue {
            chan: Chan::open(seg).map_err(D::Error::custom)?,
            joinable: false,
            _t: PhantomData,
        })
    }
}

impl<T, C: Codec<T>> Queue<T, C> {
    pub(crate) fn from_segment_joinable(seg: Segment) -> Result<Self> {
        Ok(Queue {
            chan: Chan::open(seg)?,
            joinable: true,
            _t: PhantomData,
        })
    }
}
