//! `Value<T>` and `RawValue<T>`: one `Pod` value in shared memory (Python
//! `multiprocessing.Value` with `lock=True` / `RawValue`).
//!
//! Layout and validation: `value/region.rs`. The lock is the robust lock of
//! `docs/protocols/lock.md`, so a holder's death is reported by
//! [`ValueGuard::owner_died`].

pub(crate) mod atomic_int;
pub(crate) mod region;

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use atomic_int::atomic_methods;
pub use atomic_int::AtomicInt;
use region::Region;

use crate::error::{Error, Result};
use crate::segment::{Kind, Segment, TypeFingerprint};
use crate::sync::handle::{self, impl_handle_serde, Builder, ShmHandle};
use crate::sync::lock::{lock_state, release_state, try_lock_state};
use crate::sync::robust::RobustState;
use crate::sys::task::TaskId;

/// Acquires a region's lock, panicking only when the calling thread already
/// holds it (a guard is alive): blocking would never end.
pub(crate) fn lock_blocking(state: &RobustState, seg: &Segment) -> (TaskId, bool) {
    match lock_state(state, seg, None) {
        Ok(r) => r,
        Err(e) => panic!("shmproc: {e}: drop the guard before calling get/set/to_vec"),
    }
}

/// Checks that a segment holds exactly one element (a `Value`/`RawValue`).
fn check_single<T: Pod>(region: Region<T>) -> Result<Region<T>> {
    if region.len() != 1 {
        return Err(Error::Corrupt {
            segment: region.segment().label(),
            what: "element count (param 0)".into(),
            expected: "1 for a value".into(),
            found: region.len().to_string(),
        });
    }
    Ok(region)
}

/// One `T: Pod` in shared memory, guarded by a robust lock.
///
/// [`lock`](Self::lock) gives a guard that derefs to `T`; [`get`](Self::get)
/// and [`set`](Self::set) take the lock briefly. For integer `T` the atomic
/// methods ([`fetch_add`](Self::fetch_add) and friends) do **not** take the
/// lock: do not mix them with guard writes to the same value from other
/// processes at the same time (that would race).
///
/// # Examples
/// ```
/// let v = shmproc::Value::new(41u64)?;
/// *v.lock()? += 1;
/// assert_eq!(v.get(), 42);
/// v.fetch_add(8);
/// assert_eq!(v.get(), 50);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct Value<T> {
    region: Region<T>,
}

impl<T> std::fmt::Debug for Value<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Value")
            .field("segment", self.region.segment())
            .finish()
    }
}

impl<T: Pod> ShmHandle for Value<T> {
    const KIND: Kind = Kind::Value;
    fn fingerprint() -> TypeFingerprint {
        TypeFingerprint::of::<T>()
    }
    fn segment(&self) -> &Segment {
        self.region.segment()
    }
    fn from_segment(seg: Segment) -> Result<Self> {
        Ok(Value {
            region: check_single(Region::from_segment(seg, true)?)?,
        })
    }
}
impl_handle_serde!(Value<T: bytemuck::Pod>);

impl<T: Pod> Value<T> {
    /// Creates an anonymous value holding `value`.
    ///
    /// # Errors
    /// `InvalidArgument` if `T`'s alignment exceeds 256 (the header length); the OS error if the
    /// segment cannot be created.
    ///
    /// # Examples
    /// ```
    /// let v = shmproc::Value::new(7i32)?;
    /// assert_eq!(v.get(), 7);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new(value: T) -> Result<Value<T>> {
        Value::builder().value(value).create()
    }

    /// A builder for a named value (initially zero unless [`value`](Builder::value) is set).
    ///
    /// # Examples
    /// ```
    /// use shmproc::Value;
    /// let name = format!("doc-value-{}", std::process::id());
    /// let v = Value::<u64>::builder().name(&name).value(5).create()?;
    /// let same = Value::<u64>::open(&name)?; // e.g. in an unrelated process
    /// same.set(6);
    /// assert_eq!(v.get(), 6);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn builder() -> Builder<Value<T>, T> {
        Builder::with_config(T::zeroed())
    }

    /// Opens the named value `name`.
    ///
    /// # Errors
    /// As [`Lock::open`](crate::Lock::open); `Incompatible` if it holds
    /// another element type, `Corrupt` if its params are inconsistent.
    ///
    /// # Examples
    /// ```
    /// use shmproc::Value;
    /// let name = format!("doc-value-open-{}", std::process::id());
    /// let _v = Value::<f64>::builder().name(&name).value(1.5).create()?;
    /// assert_eq!(Value::<f64>::open(&name)?.get(), 1.5);
    /// assert!(Value::<u32>::open(&name).is_err()); // another element type
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<Value<T>> {
        handle::open(name)
    }

    fn state(&self) -> &RobustState {
        self.region
            .lock()
            .expect("a Value's region is always created and opened with its lock")
    }

    /// Locks the value; the guard derefs to `T`.
    ///
    /// # Errors
    /// `InvalidArgument` if the calling thread already holds the lock.
    ///
    /// # Examples
    /// ```
    /// let v = shmproc::Value::new(1u32)?;
    /// {
    ///     let mut g = v.lock()?;
    ///     assert!(!g.owner_died());
    ///     *g += 1;
    /// } // released here
    /// assert_eq!(v.get(), 2);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn lock(&self) -> Result<ValueGuard<'_, T>> {
        self.lock_deadline(None)
    }

    /// Locks the value, waiting at most `timeout`.
    ///
    /// # Errors
    /// `Timeout` if a live holder keeps it longer; as [`lock`](Self::lock).
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// let v = shmproc::Value::new(0u8)?;
    /// let g = v.lock_timeout(Duration::from_millis(10))?;
    /// assert_eq!(*g, 0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn lock_timeout(&self, timeout: Duration) -> Result<ValueGuard<'_, T>> {
        self.lock_deadline(handle::deadline(timeout))
    }

    /// Locks the value if it is free (or its holder is dead); `Ok(None)` if
    /// a live holder has it.
    ///
    /// # Errors
    /// None today; the `Result` keeps the shape of the other locks.
    ///
    /// # Examples
    /// ```
    /// let v = shmproc::Value::new(0u8)?;
    /// let g = v.try_lock()?.expect("free");
    /// assert!(v.try_lock()?.is_none()); // held
    /// drop(g);
    /// assert!(v.try_lock()?.is_some());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn try_lock(&self) -> Result<Option<ValueGuard<'_, T>>> {
        Ok(try_lock_state(self.state(), self.region.segment())?
            .map(|(me, died)| ValueGuard::new(self.state(), self.region.data(), me, died)))
    }

    fn lock_deadline(&self, deadline: Option<Instant>) -> Result<ValueGuard<'_, T>> {
        let (me, died) = lock_state(self.state(), self.region.segment(), deadline)?;
        Ok(ValueGuard::new(self.state(), self.region.data(), me, died))
    }

    /// Reads the value under the lock. A previous holder's death is not
    /// reported here; use [`lock`](Self::lock) to see `owner_died()`.
    ///
    /// # Panics
    /// If the calling thread holds this value's lock (a guard is alive).
    ///
    /// # Examples
    /// ```
    /// let v = shmproc::Value::new(3u16)?;
    /// assert_eq!(v.get(), 3);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn get(&self) -> T {
        let (me, died) = lock_blocking(self.state(), self.region.segment());
        *ValueGuard::new(self.state(), self.region.data(), me, died)
    }

    /// Writes the value under the lock.
    ///
    /// # Panics
    /// If the calling thread holds this value's lock (a guard is alive).
    ///
    /// # Examples
    /// ```
    /// let v = shmproc::Value::new(0i64)?;
    /// v.set(-4);
    /// assert_eq!(v.get(), -4);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn set(&self, value: T) {
        let (me, died) = lock_blocking(self.state(), self.region.segment());
        *ValueGuard::new(self.state(), self.region.data(), me, died) = value;
    }

    /// The segment's name, if it is named.
    ///
    /// # Examples
    /// ```
    /// assert_eq!(shmproc::Value::new(0u8)?.name(), None); // anonymous
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.region.segment().name()
    }
}

impl<T: AtomicInt> Value<T> {
    atomic_methods!(Value);
}

impl<T: Pod> Builder<Value<T>, T> {
    /// The initial value.
    ///
    /// # Examples
    /// ```
    /// let v = shmproc::Value::builder().value(9u8).create()?;
    /// assert_eq!(v.get(), 9);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn value(mut self, value: T) -> Self {
        self.config = value;
        self
    }

    /// Creates the value.
    ///
    /// # Errors
    /// An invalid name, `EEXIST` if the name is taken, `InvalidArgument` for an
    /// alignment above 256, or the OS error.
    ///
    /// # Examples
    /// ```
    /// let v = shmproc::Value::<u32>::builder().create()?; // zero
    /// assert_eq!(v.get(), 0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn create(self) -> Result<Value<T>> {
        let region = Region::create(
            Kind::Value,
            true,
            Some(std::slice::from_ref(&self.config)),
            1,
            &self.place,
        )?;
        Ok(Value { region })
    }
}

/// A locked [`Value`]: derefs to the `T`; releases the lock on drop. Not `Send`.
///
/// # Examples
/// ```
/// let v = shmproc::Value::new([0u8; 4])?;
/// let mut g = v.lock()?;
/// g[1] = 7;
/// drop(g);
/// assert_eq!(v.get(), [0, 7, 0, 0]);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct ValueGuard<'a, T> {
    state: &'a RobustState,
    data: NonNull<T>,
    me: TaskId,
    owner_died: bool,
    _p: PhantomData<(&'a mut T, *const ())>,
}

impl<'a, T> ValueGuard<'a, T> {
    fn new(state: &'a RobustState, data: NonNull<T>, me: TaskId, owner_died: bool) -> Self {
        ValueGuard {
            state,
            data,
            me,
            owner_died,
            _p: PhantomData,
        }
    }

    /// Whether the previous holder died holding the lock: the value may be
    /// half-written.
    ///
    /// # Examples
    /// ```
    /// let v = shmproc::Value::new(0u32)?;
    /// let v2 = v.clone();
    /// // A thread that ends holding the lock, as a killed process would:
    /// std::thread::spawn(move || std::mem::forget(v2.lock().unwrap())).join().unwrap();
    /// let g = v.lock()?;
    /// assert!(g.owner_died()); // the value may be half-written
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
    /// let v = shmproc::Value::new(0u32)?;
    /// let g = v.lock()?;
    /// g.release()?;
    /// assert!(v.try_lock()?.is_some());
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn release(self) -> Result<()> {
        let r = release_state(self.state, self.me);
        std::mem::forget(self);
        r
    }
}

impl<T> std::ops::Deref for ValueGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY:
        // - `data` points to one aligned T inside the validated payload;
        // - the mapping outlives 'a (the Value handle is borrowed);
        // - we hold the lock, so no cooperating accessor writes it meanwhile;
        // - T: Pod, so whatever bytes a peer left form a valid T.
        unsafe { self.data.as_ref() }
    }
}

impl<T> std::ops::DerefMut for ValueGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference
        // handed out by this guard, and the lock excludes other guards.
        unsafe { self.data.as_mut() }
    }
}

impl<T> Drop for ValueGuard<'_, T> {
    fn drop(&mut self) {
        let _ = release_state(self.state, self.me);
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for ValueGuard<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueGuard")
            .field("value", &**self)
            .field("owner_died", &self.owner_died)
            .finish()
    }
}

/// One `T: Pod` in shared memory with **no lock** (Python `RawValue`).
///
/// Reads and writes are the caller's business: `get`/`set` copy with relaxed
/// atomic 8-byte words (bytes at unaligned ends), so they never tear an
/// aligned word but may tear a `T` larger than 8 bytes, and they order
/// nothing. Publish with a [`Lock`](crate::Lock) or [`Event`](crate::Event)
/// when that matters. Integer `T` also has the atomic methods.
///
/// # Examples
/// ```
/// let v = shmproc::RawValue::new(7i32)?;
/// v.set(v.get() * 6);
/// assert_eq!(v.fetch_sub(2), 42);
/// assert_eq!(v.load(), 40);
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Clone)]
pub struct RawValue<T> {
    region: Region<T>,
}

impl<T> std::fmt::Debug for RawValue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawValue")
            .field("segment", self.region.segment())
            .finish()
    }
}

impl<T: Pod> ShmHandle for RawValue<T> {
    const KIND: Kind = Kind::RawValue;
    fn fingerprint() -> TypeFingerprint {
        TypeFingerprint::of::<T>()
    }
    fn segment(&self) -> &Segment {
        self.region.segment()
    }
    fn from_segment(seg: Segment) -> Result<Self> {
        Ok(RawValue {
            region: check_single(Region::from_segment(seg, false)?)?,
        })
    }
}
impl_handle_serde!(RawValue<T: bytemuck::Pod>);

impl<T: Pod> RawValue<T> {
    /// Creates an anonymous raw value holding `value`.
    ///
    /// # Errors
    /// As [`Value::new`].
    ///
    /// # Examples
    /// ```
    /// let v = shmproc::RawValue::new(5u32)?;
    /// assert_eq!(v.get(), 5);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn new(value: T) -> Result<RawValue<T>> {
        RawValue::builder().value(value).create()
    }

    /// A builder for a named raw value.
    ///
    /// # Examples
    /// ```
    /// use shmproc::RawValue;
    /// let name = format!("doc-raw-{}", std::process::id());
    /// let v = RawValue::<u32>::builder().name(&name).value(1).create()?;
    /// assert_eq!(RawValue::<u32>::open(&name)?.get(), 1);
    /// # drop(v);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn builder() -> Builder<RawValue<T>, T> {
        Builder::with_config(T::zeroed())
    }

    /// Opens the named raw value `name`.
    ///
    /// # Errors
    /// As [`Value::open`].
    ///
    /// # Examples
    /// ```
    /// use shmproc::RawValue;
    /// let name = format!("doc-raw-open-{}", std::process::id());
    /// let _v = RawValue::<i8>::builder().name(&name).value(-1).create()?;
    /// assert_eq!(RawValue::<i8>::open(&name)?.get(), -1);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<RawValue<T>> {
        handle::open(name)
    }

    /// Reads the value (relaxed atomic words; may tear above 8 bytes).
    ///
    /// # Examples
    /// ```
    /// let v = shmproc::RawValue::new(2u64)?;
    /// assert_eq!(v.get(), 2);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn get(&self) -> T {
        self.region.load(0).unwrap_or_else(T::zeroed)
    }

    /// Writes the value (relaxed atomic words; may tear above 8 bytes).
    ///
    /// # Examples
    /// ```
    /// let v = shmproc::RawValue::new(0u64)?;
    /// v.set(8);
    /// assert_eq!(v.get(), 8);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn set(&self, value: T) {
        self.region.store(0, value);
    }
}

impl<T: AtomicInt> RawValue<T> {
    atomic_methods!(RawValue);
}

impl<T: Pod> Builder<RawValue<T>, T> {
    /// The initial value.
    ///
    /// # Examples
    /// ```
    /// let v = shmproc::RawValue::builder().value(4u8).create()?;
    /// assert_eq!(v.get(), 4);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn value(mut self, value: T) -> Self {
        self.config = value;
        self
    }

    /// Creates the raw value.
    ///
    /// # Errors
    /// As [`Builder::<Value<T>, T>::create`].
    ///
    /// # Examples
    /// ```
    /// let v = shmproc::RawValue::<u16>::builder().create()?;
    /// assert_eq!(v.get(), 0);
    /// # Ok::<(), shmproc::Error>(())
    /// ```
    pub fn create(self) -> Result<RawValue<T>> {
        let region = Region::create(
            Kind::RawValue,
            false,
            Some(std::slice::from_ref(&self.config)),
            1,
            &self.place,
        )?;
        Ok(RawValue { region })
    }
}

#[cfg(test)]
mod tests;
