//! Integer element types that have a matching atomic, for `fetch_add` & co.

use std::sync::atomic::Ordering;

use bytemuck::Pod;

mod sealed {
    pub trait Sealed {}
}

/// An integer type whose `Value`/`RawValue` offers atomic operations
/// (`u8`..`u64`, `i8`..`i64`, `usize`, `isize`). Sealed.
pub trait AtomicInt: Pod + sealed::Sealed {
    #[doc(hidden)]
    type Atomic;
    #[doc(hidden)]
    /// # Safety
    /// `ptr` is aligned for `Self::Atomic`, valid for the returned lifetime,
    /// and every concurrent access to it is atomic.
    unsafe fn atomic<'a>(ptr: *mut Self) -> &'a Self::Atomic;
    #[doc(hidden)]
    fn load(a: &Self::Atomic, o: Ordering) -> Self;
    #[doc(hidden)]
    fn store(a: &Self::Atomic, v: Self, o: Ordering);
    #[doc(hidden)]
    fn swap(a: &Self::Atomic, v: Self, o: Ordering) -> Self;
    #[doc(hidden)]
    fn compare_exchange(
        a: &Self::Atomic,
        current: Self,
        new: Self,
        ok: Ordering,
        err: Ordering,
    ) -> Result<Self, Self>;
    #[doc(hidden)]
    fn fetch_add(a: &Self::Atomic, v: Self, o: Ordering) -> Self;
    #[doc(hidden)]
    fn fetch_sub(a: &Self::Atomic, v: Self, o: Ordering) -> Self;
    #[doc(hidden)]
    fn fetch_and(a: &Self::Atomic, v: Self, o: Ordering) -> Self;
    #[doc(hidden)]
    fn fetch_or(a: &Self::Atomic, v: Self, o: Ordering) -> Self;
    #[doc(hidden)]
    fn fetch_xor(a: &Self::Atomic, v: Self, o: Ordering) -> Self;
    #[doc(hidden)]
    fn fetch_max(a: &Self::Atomic, v: Self, o: Ordering) -> Self;
    #[doc(hidden)]
    fn fetch_min(a: &Self::Atomic, v: Self, o: Ordering) -> Self;
}

macro_rules! atomic_int {
    ($($t:ty => $a:ty),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl AtomicInt for $t {
            type Atomic = $a;
            unsafe fn atomic<'a>(ptr: *mut Self) -> &'a $a {
                // SAFETY: forwarded from this function's contract (alignment,
                // validity for 'a, atomic-only concurrent access).
                unsafe { <$a>::from_ptr(ptr) }
            }
            fn load(a: &$a, o: Ordering) -> Self { a.load(o) }
            fn store(a: &$a, v: Self, o: Ordering) { a.store(v, o) }
            fn swap(a: &$a, v: Self, o: Ordering) -> Self { a.swap(v, o) }
            fn compare_exchange(a: &$a, c: Self, n: Self, ok: Ordering, err: Ordering) -> Result<Self, Self> {
                a.compare_exchange(c, n, ok, err)
            }
            fn fetch_add(a: &$a, v: Self, o: Ordering) -> Self { a.fetch_add(v, o) }
            fn fetch_sub(a: &$a, v: Self, o: Ordering) -> Self { a.fetch_sub(v, o) }
            fn fetch_and(a: &$a, v: Self, o: Ordering) -> Self { a.fetch_and(v, o) }
            fn fetch_or(a: &$a, v: Self, o: Ordering) -> Self { a.fetch_or(v, o) }
            fn fetch_xor(a: &$a, v: Self, o: Ordering) -> Self { a.fetch_xor(v, o) }
            fn fetch_max(a: &$a, v: Self, o: Ordering) -> Self { a.fetch_max(v, o) }
            fn fetch_min(a: &$a, v: Self, o: Ordering) -> Self { a.fetch_min(v, o) }
        }
        // The data offset is 16-aligned, so any of these atomics fits there.
        const _: () = assert!(std::mem::align_of::<$a>() <= 16);
        const _: () = assert!(std::mem::size_of::<$a>() == std::mem::size_of::<$t>());
    )*};
}

use std::sync::atomic::{
    AtomicI16, AtomicI32, AtomicI64, AtomicI8, AtomicIsize, AtomicU16, AtomicU32, AtomicU64,
    AtomicU8, AtomicUsize,
};

atomic_int!(
    u8 => AtomicU8, u16 => AtomicU16, u32 => AtomicU32, u64 => AtomicU64, usize => AtomicUsize,
    i8 => AtomicI8, i16 => AtomicI16, i32 => AtomicI32, i64 => AtomicI64, isize => AtomicIsize,
);

/// The atomic methods of `Value<T>` and `RawValue<T>` for integer `T`,
/// written once over a function that yields the atomic.
macro_rules! atomic_methods {
    () => {
        /// Atomically reads the value (Acquire), without the lock.
        pub fn load(&self) -> T {
            // SYNC POINT: value-atomic (Acquire pairs with the Release of the
            // modifying methods).
            T::load(self.atomic(), std::sync::atomic::Ordering::Acquire)
        }

        /// Atomically writes the value (Release), without the lock.
        pub fn store(&self, v: T) {
            // SYNC POINT: value-atomic.
            T::store(self.atomic(), v, std::sync::atomic::Ordering::Release)
        }

        /// Atomically replaces the value, returning the old one (AcqRel).
        pub fn swap(&self, v: T) -> T {
            // SYNC POINT: value-atomic.
            T::swap(self.atomic(), v, std::sync::atomic::Ordering::AcqRel)
        }

        /// Atomically replaces `current` by `new`; `Err(actual)` if the value
        /// was not `current` (AcqRel on success, Acquire on failure).
        ///
        /// # Errors
        /// `Err(actual)` with the value found when it differs from `current`.
        pub fn compare_exchange(&self, current: T, new: T) -> std::result::Result<T, T> {
            use std::sync::atomic::Ordering;
            // SYNC POINT: value-atomic.
            T::compare_exchange(
                self.atomic(),
                current,
                new,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
        }

        /// Atomically adds `v` (wrapping), returning the previous value.
        pub fn fetch_add(&self, v: T) -> T {
            // SYNC POINT: value-atomic.
            T::fetch_add(self.atomic(), v, std::sync::atomic::Ordering::AcqRel)
        }

        /// Atomically subtracts `v` (wrapping), returning the previous value.
        pub fn fetch_sub(&self, v: T) -> T {
            // SYNC POINT: value-atomic.
            T::fetch_sub(self.atomic(), v, std::sync::atomic::Ordering::AcqRel)
        }

        /// Atomic bitwise and, returning the previous value.
        pub fn fetch_and(&self, v: T) -> T {
            // SYNC POINT: value-atomic.
            T::fetch_and(self.atomic(), v, std::sync::atomic::Ordering::AcqRel)
        }

        /// Atomic bitwise or, returning the previous value.
        pub fn fetch_or(&self, v: T) -> T {
            // SYNC POINT: value-atomic.
            T::fetch_or(self.atomic(), v, std::sync::atomic::Ordering::AcqRel)
        }

        /// Atomic bitwise xor, returning the previous value.
        pub fn fetch_xor(&self, v: T) -> T {
            // SYNC POINT: value-atomic.
            T::fetch_xor(self.atomic(), v, std::sync::atomic::Ordering::AcqRel)
        }

        /// Atomic maximum, returning the previous value.
        pub fn fetch_max(&self, v: T) -> T {
            // SYNC POINT: value-atomic.
            T::fetch_max(self.atomic(), v, std::sync::atomic::Ordering::AcqRel)
        }

        /// Atomic minimum, returning the previous value.
        pub fn fetch_min(&self, v: T) -> T {
            // SYNC POINT: value-atomic.
            T::fetch_min(self.atomic(), v, std::sync::atomic::Ordering::AcqRel)
        }

        fn atomic(&self) -> &T::Atomic {
            // SAFETY:
            // - the data is one `T` at an offset aligned to 16 (Region's layout),
            //   at least the atomic's alignment (asserted per type);
            // - the mapping lives as long as `&self`;
            // - these methods only access it atomically (mixing with guard
            //   writes from other processes is documented as the caller's race).
            unsafe { T::atomic(self.region.data().as_ptr()) }
        }
    };
}
pub(crate) use atomic_methods;
