//! `Array<T>` and `RawArray<T>`: a fixed-length slice of `Pod` elements in
//! shared memory (Python `multiprocessing.Array` / `RawArray`).
//!
//! Same layout and validation as `Value` (see `value::region`), with the
//! element count in the header params.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::error::{Error, Result};
use crate::segment::{Kind, Segment, TypeFingerprint};
use crate::sync::handle::{self, impl_handle_serde, Builder, ShmHandle};
use crate::sync::lock::{lock_state, release_state, try_lock_state};
use crate::sync::robust::RobustState;
use crate::sys::task::TaskId;
use crate::value::lock_blocking;
use crate::value::region::Region;

/// Settings of an [`Array`]/[`RawArray`] builder: a length, or initial data.
///
/// # Examples
/// ```
/// let a = shmproc::Array::<u8>::builder().len(4).create()?; // configures an ArrayConfig
/// assert_eq!(a.len(), 4);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ArrayConfig<T> {
    len: usize,
    init: Option<Vec<T>>,
}

impl<T> Default for ArrayConfig<T> {
    fn default() -> Self {
        ArrayConfig { len: 0, init: None }
    }
}

fn index_error(i: usize, len: usize) -> Error {
    Error::invalid("array index", format!("below the length {len}"), i)
}

/// A fixed-length array of `T: Pod` in shared memory, guarded by a robust lock.
///
/// # Examples
/// ```
/// let a = shmproc::Array::from_slice(&[1u32, 2, 3])?;
/// {
///     let mut g = a.lock()?;
///     g[0] = 10;
///     g.iter_mut().for_each(|x| *x *= 2);
/// }
/// assert_eq!(a.to_vec(), [20, 4, 6]);
/// assert_eq!(a.len(), 3);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Array<T> {
    region: Region<T>,
}

impl<T> std::fmt::Debug for Array<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Array")
            .field("segment", self.region.segment())
            .field("len", &self.region.len())
            .finish()
    }
}

impl<T: Pod> ShmHandle for Array<T> {
    const KIND: Kind = Kind::Array;
    fn fingerprint() -> TypeFingerprint {
        TypeFingerprint::of::<T>()
    }
    fn segment(&self) -> &Segment {
        self.region.segment()
    }
    fn from_segment(seg: Segment) -> Result<Self> {
        Ok(Array {
            region: Region::from_segment(seg, true)?,
        })
    }
}
impl_handle_serde!(Array<T: bytemuck::Pod>);

impl<T: Pod> Array<T> {
    /// Creates an anonymous array of `len` zeroed elements.
    ///
    /// # Errors
    /// `InvalidArgument` for a size overflow or an alignment above 256; the OS
    /// error if the segment cannot be created.
    ///
    /// # Examples
    /// ```
    /// let a = shmproc::Array::<f64>::new(3)?;
    /// assert_eq!(a.to_vec(), [0.0; 3]);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new(len: usize) -> Result<Array<T>> {
        Array::builder().len(len).create()
    }

    /// Creates an anonymous array holding a copy of `data`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    ///
    /// # Examples
    /// ```
    /// let a = shmproc::Array::from_slice(&[1u8, 2, 3])?;
    /// assert_eq!(a.len(), 3);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn from_slice(data: &[T]) -> Result<Array<T>> {
        Array::builder().data(data).create()
    }

    /// A builder for a named array; set [`len`](Builder::len) or [`data`](Builder::data).
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-array-{}", std::process::id());
    /// let a = shmproc::Array::<u32>::builder().name(&name).len(4).create()?;
    /// let same = shmproc::Array::<u32>::open(&name)?; // e.g. in an unrelated process
    /// same.set(0, 9)?;
    /// assert_eq!(a.get(0), Some(9));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn builder() -> Builder<Array<T>, ArrayConfig<T>> {
        Builder::with_config(ArrayConfig::default())
    }

    /// Opens the named array `name`.
    ///
    /// # Errors
    /// As [`Lock::open`](crate::Lock::open); `Incompatible` for another element
    /// type, `Corrupt` if its length and payload disagree.
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-array-open-{}", std::process::id());
    /// let _a = shmproc::Array::<u16>::builder().name(&name).data(&[5, 6]).create()?;
    /// assert_eq!(shmproc::Array::<u16>::open(&name)?.to_vec(), [5, 6]);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Array<T>> {
        handle::open(name)
    }

    fn state(&self) -> &RobustState {
        self.region
            .lock()
            .expect("an Array's region is always created and opened with its lock")
    }

    /// Locks the array; the guard derefs to `[T]`.
    ///
    /// # Errors
    /// `InvalidArgument` if the calling thread already holds the lock.
    ///
    /// # Examples
    /// ```
    /// let a = shmproc::Array::<u64>::new(4)?;
    /// {
    ///     let mut g = a.lock()?;
    ///     g.iter_mut().enumerate().for_each(|(i, x)| *x = i as u64);
    /// }
    /// assert_eq!(a.to_vec(), [0, 1, 2, 3]);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn lock(&self) -> Result<ArrayGuard<'_, T>> {
        self.lock_deadline(None)
    }

    /// Locks the array, waiting at most `timeout`.
    ///
    /// # Errors
    /// `Timeout` if a live holder keeps it longer; as [`lock`](Self::lock).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let a = shmproc::Array::<u8>::new(2)?;
    /// let g = a.lock_timeout(Duration::from_millis(10))?;
    /// assert_eq!(g.len(), 2);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn lock_timeout(&self, timeout: Duration) -> Result<ArrayGuard<'_, T>> {
        self.lock_deadline(handle::deadline(timeout))
    }

    /// Locks the array if it is free (or its holder is dead); `Ok(None)` if
    /// a live holder has it.
    ///
    /// # Errors
    /// None today; the `Result` keeps the shape of the other locks.
    ///
    /// # Examples
    /// ```
    /// let a = shmproc::Array::<u8>::new(2)?;
    /// let g = a.try_lock()?.expect("free");
    /// assert!(a.try_lock()?.is_none()); // held
    /// drop(g);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn try_lock(&self) -> Result<Option<ArrayGuard<'_, T>>> {
        Ok(try_lock_state(self.state(), self.region.segment())?
            .map(|(me, died)| self.guard(me, died)))
    }

    fn lock_deadline(&self, deadline: Option<Instant>) -> Result<ArrayGuard<'_, T>> {
        let (me, died) = lock_state(self.state(), self.region.segment(), deadline)?;
        Ok(self.guard(me, died))
    }

    fn guard(&self, me: TaskId, owner_died: bool) -> ArrayGuard<'_, T> {
        ArrayGuard {
            state: self.state(),
            data: self.region.data(),
            len: self.region.len(),
            me,
            owner_died,
            _p: PhantomData,
        }
    }

    fn lock_blocking(&self) -> ArrayGuard<'_, T> {
        let (me, died) = lock_blocking(self.state(), self.region.segment());
        self.guard(me, died)
    }

    /// The number of elements.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shmproc::Array::<i32>::new(5)?.len(), 5);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.region.len()
    }

    /// Whether the array has no elements.
    ///
    /// # Examples
    /// ```
    /// assert!(shmproc::Array::<i32>::new(0)?.is_empty());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.region.len() == 0
    }

    /// Copies the elements out under the lock.
    ///
    /// # Panics
    /// If the calling thread holds this array's lock (a guard is alive).
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shmproc::Array::from_slice(&[1i8, -1])?.to_vec(), [1, -1]);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        self.lock_blocking().to_vec()
    }

    /// Element `i` under the lock, `None` out of bounds.
    ///
    /// # Panics
    /// If the calling thread holds this array's lock (a guard is alive).
    ///
    /// # Examples
    /// ```
    /// let a = shmproc::Array::from_slice(&[7u32])?;
    /// assert_eq!(a.get(0), Some(7));
    /// assert_eq!(a.get(1), None);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn get(&self, i: usize) -> Option<T> {
        self.lock_blocking().get(i).copied()
    }

    /// Writes element `i` under the lock.
    ///
    /// # Errors
    /// `InvalidArgument` if `i` is out of bounds.
    ///
    /// # Panics
    /// If the calling thread holds this array's lock (a guard is alive).
    ///
    /// # Examples
    /// ```
    /// let a = shmproc::Array::<u32>::new(1)?;
    /// a.set(0, 3)?;
    /// assert!(a.set(1, 3).is_err()); // out of bounds
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn set(&self, i: usize, value: T) -> Result<()> {
        let mut g = self.lock_blocking();
        let len = g.len();
        *g.get_mut(i).ok_or_else(|| index_error(i, len))? = value;
        Ok(())
    }

    /// The segment's name, if it is named.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shmproc::Array::<u8>::new(1)?.name(), None); // anonymous
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.region.segment().name()
    }
}

impl<T: Pod, K> Builder<K, ArrayConfig<T>> {
    /// The number of (zeroed) elements.
    ///
    /// # Examples
    /// ```
    /// let a = shmproc::Array::<u8>::builder().len(16).create()?;
    /// assert_eq!(a.len(), 16);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn len(mut self, len: usize) -> Self {
        self.config = ArrayConfig { len, init: None };
        self
    }

    /// The initial elements (the length is `data.len()`).
    ///
    /// # Examples
    /// ```
    /// let a = shmproc::Array::builder().data(&[1.0f32, 2.0]).create()?;
    /// assert_eq!(a.to_vec(), [1.0, 2.0]);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn data(mut self, data: &[T]) -> Self {
        self.config = ArrayConfig {
            len: data.len(),
            init: Some(data.to_vec()),
        };
        self
    }
}

impl<T: Pod> Builder<Array<T>, ArrayConfig<T>> {
    /// Creates the array.
    ///
    /// # Errors
    /// An invalid name, `EEXIST` if the name is taken, `InvalidArgument` for a
    /// size overflow or an alignment above 256, or the OS error.
    ///
    /// # Examples
    /// ```
    /// let a = shmproc::Array::<u64>::builder().len(2).create()?;
    /// assert_eq!(a.to_vec(), [0, 0]);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn create(self) -> Result<Array<T>> {
        let c = &self.config;
        let region = Region::create(Kind::Array, true, c.init.as_deref(), c.len, &self.place)?;
        Ok(Array { region })
    }
}

/// A locked [`Array`]: derefs to `[T]`; releases the lock on drop. Not `Send`.
///
/// # Examples
/// ```
/// let a = shmproc::Array::<u8>::new(3)?;
/// let mut g = a.lock()?;
/// g.copy_from_slice(&[1, 2, 3]);
/// drop(g);
/// assert_eq!(a.to_vec(), [1, 2, 3]);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ArrayGuard<'a, T> {
    state: &'a RobustState,
    data: NonNull<T>,
    len: usize,
    me: TaskId,
    owner_died: bool,
    _p: PhantomData<(&'a mut [T], *const ())>,
}

impl<T> ArrayGuard<'_, T> {
    /// Whether the previous holder died holding the lock: elements may be
    /// half-written.
    ///
    /// # Examples
    /// ```
    /// let a = shmproc::Array::<u8>::new(1)?;
    /// let a2 = a.clone();
    /// // A thread that ends holding the lock, as a killed process would:
    /// std::thread::spawn(move || std::mem::forget(a2.lock().unwrap())).join().unwrap();
    /// assert!(a.lock()?.owner_died());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Releases the lock now.
    ///
    /// # Errors
    /// `InvalidArgument` if the lock no longer names this thread.
    ///
    /// # Examples
    /// ```
    /// let a = shmproc::Array::<u8>::new(1)?;
    /// a.lock()?.release()?;
    /// assert!(a.try_lock()?.is_some());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn release(self) -> Result<()> {
        let r = release_state(self.state, self.me);
        std::mem::forget(self);
        r
    }
}

impl<T> std::ops::Deref for ArrayGuard<'_, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY:
        // - `data` points to `len` aligned Ts inside the validated payload;
        // - the mapping outlives the guard (the Array handle is borrowed);
        // - we hold the lock, so no cooperating accessor writes meanwhile;
        // - T: Pod, so any bytes form valid Ts.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr(), self.len) }
    }
}

impl<T> std::ops::DerefMut for ArrayGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes this the only slice handed
        // out by this guard, and the lock excludes other guards.
        unsafe { std::slice::from_raw_parts_mut(self.data.as_ptr(), self.len) }
    }
}

impl<T> Drop for ArrayGuard<'_, T> {
    fn drop(&mut self) {
        let _ = release_state(self.state, self.me);
    }
}

impl<T> std::fmt::Debug for ArrayGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArrayGuard")
            .field("len", &self.len)
            .field("owner_died", &self.owner_died)
            .finish()
    }
}

/// A fixed-length array of `T: Pod` with **no lock** (Python `RawArray`).
///
/// Reads and writes are the caller's business: every access copies with
/// relaxed atomic 8-byte words (bytes at unaligned ends), so it never tears an
/// aligned word but may tear an element larger than 8 bytes, orders nothing,
/// and a `to_vec` is not a snapshot of one instant.
///
/// # Examples
/// ```
/// let a = shmproc::RawArray::<f64>::new(4)?;
/// a.set(2, 1.5)?;
/// assert_eq!(a.get(2), Some(1.5));
/// assert_eq!(a.to_vec(), [0.0, 0.0, 1.5, 0.0]);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct RawArray<T> {
    region: Region<T>,
}

impl<T> std::fmt::Debug for RawArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawArray")
            .field("segment", self.region.segment())
            .field("len", &self.region.len())
            .finish()
    }
}

impl<T: Pod> ShmHandle for RawArray<T> {
    const KIND: Kind = Kind::RawArray;
    fn fingerprint() -> TypeFingerprint {
        TypeFingerprint::of::<T>()
    }
    fn segment(&self) -> &Segment {
        self.region.segment()
    }
    fn from_segment(seg: Segment) -> Result<Self> {
        Ok(RawArray {
            region: Region::from_segment(seg, false)?,
        })
    }
}
impl_handle_serde!(RawArray<T: bytemuck::Pod>);

impl<T: Pod> RawArray<T> {
    /// Creates an anonymous raw array of `len` zeroed elements.
    ///
    /// # Errors
    /// As [`Array::new`].
    ///
    /// # Examples
    /// ```
    /// let a = shmproc::RawArray::<u32>::new(2)?;
    /// assert_eq!(a.to_vec(), [0, 0]);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new(len: usize) -> Result<RawArray<T>> {
        RawArray::builder().len(len).create()
    }

    /// Creates an anonymous raw array holding a copy of `data`.
    ///
    /// # Errors
    /// As [`Array::new`].
    ///
    /// # Examples
    /// ```
    /// let a = shmproc::RawArray::from_slice(&[3u8, 4])?;
    /// assert_eq!(a.get(1), Some(4));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn from_slice(data: &[T]) -> Result<RawArray<T>> {
        RawArray::builder().data(data).create()
    }

    /// A builder for a named raw array.
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-rawarray-{}", std::process::id());
    /// let a = shmproc::RawArray::<u8>::builder().name(&name).len(2).create()?;
    /// assert_eq!(shmproc::RawArray::<u8>::open(&name)?.len(), 2);
    /// # drop(a);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn builder() -> Builder<RawArray<T>, ArrayConfig<T>> {
        Builder::with_config(ArrayConfig::default())
    }

    /// Opens the named raw array `name`.
    ///
    /// # Errors
    /// As [`Array::open`].
    ///
    /// # Examples
    /// ```
    /// let name = format!("doc-rawarray-open-{}", std::process::id());
    /// let _a = shmproc::RawArray::<u8>::builder().name(&name).data(&[1]).create()?;
    /// assert_eq!(shmproc::RawArray::<u8>::open(&name)?.to_vec(), [1]);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<RawArray<T>> {
        handle::open(name)
    }

    /// The number of elements.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shmproc::RawArray::<u8>::new(3)?.len(), 3);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.region.len()
    }

    /// Whether the array has no elements.
    ///
    /// # Examples
    /// ```
    /// assert!(shmproc::RawArray::<u8>::new(0)?.is_empty());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.region.len() == 0
    }

    /// Element `i`, `None` out of bounds.
    ///
    /// # Examples
    /// ```
    /// let a = shmproc::RawArray::from_slice(&[5u16])?;
    /// assert_eq!(a.get(0), Some(5));
    /// assert_eq!(a.get(9), None);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn get(&self, i: usize) -> Option<T> {
        self.region.load(i)
    }

    /// Writes element `i`.
    ///
    /// # Errors
    /// `InvalidArgument` if `i` is out of bounds.
    ///
    /// # Examples
    /// ```
    /// let a = shmproc::RawArray::<u16>::new(1)?;
    /// a.set(0, 2)?;
    /// assert_eq!(a.get(0), Some(2));
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn set(&self, i: usize, value: T) -> Result<()> {
        if self.region.store(i, value) {
            Ok(())
        } else {
            Err(index_error(i, self.region.len()))
        }
    }

    /// Copies every element out.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shmproc::RawArray::from_slice(&[1u8, 2])?.to_vec(), [1, 2]);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn to_vec(&self) -> Vec<T> {
        self.region.load_all()
    }

    /// Overwrites every element from `data`.
    ///
    /// # Errors
    /// `InvalidArgument` if `data.len()` differs from the array's length.
    ///
    /// # Examples
    /// ```
    /// let a = shmproc::RawArray::<u8>::new(2)?;
    /// a.copy_from_slice(&[8, 9])?;
    /// assert_eq!(a.to_vec(), [8, 9]);
    /// assert!(a.copy_from_slice(&[1]).is_err()); // length differs
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn copy_from_slice(&self, data: &[T]) -> Result<()> {
        if data.len() != self.region.len() {
            return Err(Error::invalid(
                "slice length",
                format!("the array's length {}", self.region.len()),
                data.len(),
            ));
        }
        self.region.store_all(data);
        Ok(())
    }
}

impl<T: Pod> Builder<RawArray<T>, ArrayConfig<T>> {
    /// Creates the raw array.
    ///
    /// # Errors
    /// As [`Builder::<Array<T>, ArrayConfig<T>>::create`].
    ///
    /// # Examples
    /// ```
    /// let a = shmproc::RawArray::<u8>::builder().len(1).create()?;
    /// assert_eq!(a.to_vec(), [0]);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn create(self) -> Result<RawArray<T>> {
        let c = &self.config;
        let region = Region::create(Kind::RawArray, false, c.init.as_deref(), c.len, &self.place)?;
        Ok(RawArray { region })
    }
}

#[cfg(test)]
mod tests;
