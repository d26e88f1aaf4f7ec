//! `JoinableQueue<T>`: a [`Queue`] that counts unfinished tasks.

use std::ops::Deref;
use std::time::{Duration, Instant};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::api::{Queue, QueueBuilder};
use super::tasks;
use crate::chan::codec::{fingerprint, Codec, Serde};
use crate::error::{Error, Result};
use crate::segment::{Kind, Segment};

/// A queue whose consumers report each item done (Python's
/// `multiprocessing.JoinableQueue`): every `put` adds one unfinished task,
/// [`task_done`](Self::task_done) removes one, [`join`](Self::join) waits
/// until none is left. Every `Queue` method is available through `Deref`.
///
/// # Examples
/// ```
/// use shmproc::JoinableQueue;
/// let q: JoinableQueue<u32> = JoinableQueue::new(8)?;
/// q.put(&1)?;
/// let _job = q.get()?;
/// q.task_done()?;
/// q.join()?;
/// # Ok::<(), shmproc::Error>(())
/// ```
pub struct JoinableQueue<T, C = Serde> {
    q: Queue<T, C>,
}

impl<T, C> Clone for JoinableQueue<T, C> {
    fn clone(&self) -> Self {
        JoinableQueue { q: self.q.clone() }
    }
}

impl<T, C> std::fmt::Debug for JoinableQueue<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("JoinableQueue").field(&self.q).finish()
    }
}

impl<T, C> Deref for JoinableQueue<T, C> {
    type Target = Queue<T, C>;
    fn deref(&self) -> &Queue<T, C> {
        &self.q
    }
}

impl<T, C: Codec<T>> JoinableQueue<T, C> {
    /// An anonymous joinable queue holding at most `maxsize` items.
    ///
    /// # Errors
    /// As [`Queue::new`].
    ///
    /// # Examples
    /// ```
    /// let q = shmproc::JoinableQueue::<String>::new(8)?;
    /// q.put(&"job".into())?;
    /// assert_eq!(q.unfinished(), 1);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new(maxsize: usize) -> Result<Self> {
        Self::create(Queue::builder().maxsize(maxsize))
    }

    /// Creates a joinable queue from a [`QueueBuilder`] (names, sizes).
    ///
    /// # Errors
    /// As [`QueueBuilder::create`].
    ///
    /// # Examples
    /// ```
    /// let q = shmproc::JoinableQueue::create(shmproc::Queue::<u8>::builder().maxsize(2))?;
    /// assert_eq!(q.capacity(), 2);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn create(builder: QueueBuilder<T, C>) -> Result<Self> {
        Ok(JoinableQueue {
            q: builder.create_kind(true)?,
        })
    }

    /// Opens the named joinable queue `name`.
    ///
    /// # Errors
    /// As [`Queue::open`].
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-jq-{}", std::process::id());
    /// let _q = shmproc::JoinableQueue::<u8>::create(shmproc::Queue::builder().name(&name))?;
    /// assert!(shmproc::JoinableQueue::<u8>::open(&name).is_ok());
    /// assert!(shmproc::Queue::<u8>::open(&name).is_err()); // another kind
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Self> {
        Ok(JoinableQueue {
            q: Queue::open_kind(name, true)?,
        })
    }

    /// Marks one item taken with `get` as processed.
    ///
    /// # Errors
    /// `InvalidArgument` when called more times than items were put.
    ///
    /// # Examples
    /// ```
    /// # let q = shmproc::JoinableQueue::<u32>::new(4)?;
    /// q.put(&1)?;
    /// let _job = q.get()?;
    /// q.task_done()?; // this one is finished
    /// q.join()?; // returns at once: nothing unfinished
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn task_done(&self) -> Result<()> {
        if tasks::done(&self.q.chan, 1) {
            Ok(())
        } else {
            Err(Error::invalid(
                "task_done call",
                "at most one per item put",
                "more calls than items",
            ))
        }
    }

    /// Number of items put and not yet marked done.
    ///
    /// # Examples
    /// ```
    /// # let q = shmproc::JoinableQueue::<u32>::new(4)?;
    /// q.put(&1)?;
    /// q.get()?;
    /// assert_eq!(q.unfinished(), 1); // taken, not yet done
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn unfinished(&self) -> usize {
        tasks::unfinished(&self.q.chan) as usize
    }

    /// Blocks until every item put has been marked done.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for peer-death reports.
    ///
    /// # Examples
    /// ```
    /// # let q = shmproc::JoinableQueue::<u32>::new(4)?;
    /// let q2 = q.clone();
    /// q.put(&1)?;
    /// let worker = std::thread::spawn(move || { q2.get().unwrap(); q2.task_done().unwrap(); });
    /// q.join()?; // until every item put was marked done
    /// worker.join().unwrap();
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn join(&self) -> Result<()> {
        self.join_until(None).map(|_| ())
    }

    /// As [`join`](Self::join), giving up after `timeout`.
    ///
    /// # Errors
    /// `Timeout` when tasks remain unfinished after `timeout`.
    ///
    /// # Examples
    /// ```
    /// # let q = shmproc::JoinableQueue::<u32>::new(4)?;
    /// q.put(&1)?;
    /// assert!(matches!(q.join_timeout(std::time::Duration::from_millis(5)), Err(shmproc::Error::Timeout)));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn join_timeout(&self, timeout: Duration) -> Result<()> {
        self.join_until(Instant::now().checked_add(timeout))
    }

    fn join_until(&self, deadline: Option<Instant>) -> Result<()> {
        tasks::join(&self.q.chan, deadline)
    }
}

impl<T, C: Codec<T>> Serialize for JoinableQueue<T, C> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.q.chan.seg.serialize_handle(s)
    }
}

impl<'de, T, C: Codec<T>> Deserialize<'de> for JoinableQueue<T, C> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let seg = Segment::deserialize_handle(d, Kind::JoinableQueue, &fingerprint::<T, C>())?;
        Ok(JoinableQueue {
            q: Queue::from_segment_joinable(seg).map_err(D::Error::custom)?,
        })
    }
}
