//! How items become bytes: postcard's format for serde types (written and
//! read by `src/wire/`), a plain copy for Pod.

use std::cell::RefCell;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::segment::{transfer, TypeFingerprint};
use crate::wire;

/// Turns items into message bytes and back. Implemented by [`Serde`] (the
/// default: any `Serialize + DeserializeOwned`, encoded with postcard) and
/// [`Pod`] (zero-copy for `bytemuck::Pod` types).
///
/// # Examples
/// ```
/// use shmproc::{Pod, Queue, Serde};
/// let _zero_copy: Queue<[u8; 16], Pod> = Queue::new(4)?; // bytes as they are
/// let _encoded: Queue<Vec<String>, Serde> = Queue::new(4)?; // postcard
/// # Ok::<(), shmproc::Error>(())
/// ```
pub trait Codec<T>: Send + Sync + 'static {
    /// A name for messages and type fingerprints.
    const NAME: &'static str;
    /// Calls `f` with the encoded bytes of `item`.
    ///
    /// # Errors
    /// A codec error from the encoder, or whatever `f` returns.
    fn encode<R>(item: &T, f: impl FnOnce(&[u8]) -> Result<R>) -> Result<R>;
    /// Decodes one item.
    ///
    /// # Errors
    /// A codec error (serde) or a length mismatch (Pod).
    fn decode(bytes: &[u8]) -> Result<T>;
    /// Default inline slot data size for items of this codec (bytes).
    fn default_slot() -> u64;

    /// Decodes a message of `len` bytes that `fill` copies into the buffer it
    /// is given. The default fills a buffer and calls [`decode`](Self::decode);
    /// fixed-size codecs fill the item directly.
    ///
    /// # Errors
    /// As [`decode`](Self::decode).
    fn decode_from(len: usize, fill: &mut dyn FnMut(&mut [u8])) -> Result<T> {
        let mut buf = vec![0u8; len];
        fill(&mut buf);
        Self::decode(&buf)
    }
}

/// The serde codec (postcard's format): any `T: Serialize + DeserializeOwned`.
///
/// # Examples
/// ```
/// let q: shmproc::Queue<(u8, String), shmproc::Serde> = shmproc::Queue::new(2)?;
/// q.put(&(1, "a".into()))?;
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Serde;

/// The zero-copy codec for `T: bytemuck::Pod`: the item's bytes are the message.
///
/// # Examples
/// ```
/// let q: shmproc::Queue<u64, shmproc::Pod> = shmproc::Queue::new(2)?; // = PodQueue<u64>
/// q.put(&1)?;
/// # Ok::<(), shmproc::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Pod;

/// First size of the per-thread encoding buffer.
const ENCODE_START: usize = 512;
/// Items whose encoding fits in this many bytes encode on the stack.
const ENCODE_STACK: usize = 256;
/// Messages up to this size decode from a stack buffer.
const DECODE_STACK: usize = 256;
/// Largest per-thread encoding buffer kept between messages.
const ENCODE_MAX: usize = 1 << 20;

thread_local! {
    static ENCODE_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static DECODE_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl<T: Serialize + DeserializeOwned> Codec<T> for Serde {
    const NAME: &'static str = "postcard";

    #[inline]
    fn encode<R>(item: &T, f: impl FnOnce(&[u8]) -> Result<R>) -> Result<R> {
        // A handle that cannot travel (an anonymous one) says why: postcard
        // would replace that by a generic error.
        let err = |e| {
            transfer::why_encode_fails(item).unwrap_or_else(|| {
                Error::codec(format!("encoding a {}", std::any::type_name::<T>()), e)
            })
        };
        // Small items (most of them) encode on the stack first: no
        // thread-local lookup or RefCell; larger ones retry below.
        let mut stack = [0u8; ENCODE_STACK];
        match wire::to_slice(item, &mut stack[..]) {
            Ok(bytes) => {
                let n = bytes.len();
                return f(&stack[..n]);
            }
            Err(postcard::Error::SerializeBufferFull) => {}
            Err(e) => return Err(err(e)),
        }
        ENCODE_BUF.with(|cell| {
            // A re-entrant call (encoding inside f) gets its own buffer.
            let Ok(mut buf) = cell.try_borrow_mut() else {
                return f(&wire::to_vec(item).map_err(err)?);
            };
            if buf.is_empty() {
                buf.resize(ENCODE_START, 0);
            }
            // `to_slice` writes into a ready buffer without growth checks per
            // field.
            match wire::to_slice(item, &mut buf[..]) {
                Ok(bytes) => {
                    let n = bytes.len();
                    f(&buf[..n])
                }
                Err(postcard::Error::SerializeBufferFull) => {
                    let v = wire::to_vec(item).map_err(err)?;
                    // Next time, start with room for a message this big.
                    if v.len() <= ENCODE_MAX {
                        let len = (v.len() * 2).min(ENCODE_MAX);
                        buf.resize(len, 0);
                    }
                    drop(buf);
                    f(&v)
                }
                Err(e) => Err(err(e)),
            }
        })
    }

    #[inline]
    fn decode(bytes: &[u8]) -> Result<T> {
        wire::from_bytes(bytes).map_err(|e| {
            transfer::why_decode_fails::<T>(bytes).unwrap_or_else(|| {
                Error::codec(format!("decoding a {}", std::any::type_name::<T>()), e)
            })
        })
    }

    #[inline]
    fn decode_from(len: usize, fill: &mut dyn FnMut(&mut [u8])) -> Result<T> {
        if len <= DECODE_STACK {
            // Small messages (most of them) decode from the stack: no
            // thread-local lookup, no RefCell, no resize.
            let mut buf = [0u8; DECODE_STACK];
            fill(&mut buf[..len]);
            return Self::decode(&buf[..len]);
        }
        DECODE_BUF.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                buf.resize(len, 0);
                fill(&mut buf);
                let r = Self::decode(&buf);
                if buf.capacity() > 1 << 20 {
                    *buf = Vec::new();
                }
                r
            }
            Err(_) => {
                let mut buf = vec![0u8; len];
                fill(&mut buf);
                Self::decode(&buf)
            }
        })
    }

    fn default_slot() -> u64 {
        // 240 data bytes + 16 header = 256-byte slots (four cache lines).
        240
    }
}

impl<T: bytemuck::Pod + Send + Sync> Codec<T> for Pod {
    const NAME: &'static str = "pod";

    #[inline]
    fn encode<R>(item: &T, f: impl FnOnce(&[u8]) -> Result<R>) -> Result<R> {
        f(bytemuck::bytes_of(item))
    }

    #[inline]
    fn decode(bytes: &[u8]) -> Result<T> {
        if bytes.len() != std::mem::size_of::<T>() {
            return Err(pod_length_mismatch::<T>(bytes.len()));
        }
        Ok(bytemuck::pod_read_unaligned(bytes))
    }

    #[inline(always)]
    fn decode_from(len: usize, fill: &mut dyn FnMut(&mut [u8])) -> Result<T> {
        if len != std::mem::size_of::<T>() {
            return Err(pod_length_mismatch::<T>(len));
        }
        let mut item = T::zeroed();
        fill(bytemuck::bytes_of_mut(&mut item));
        Ok(item)
    }

    fn default_slot() -> u64 {
        // Packed: a u64 item makes a 32-byte slot (16-byte header), two per
        // cache line, so a line moves between producer and consumer once per
        // two items. The floor of 16 bytes fits a bulk descriptor.
        (std::mem::size_of::<T>() as u64).div_ceil(8).max(2) * 8
    }
}

/// The error for a Pod message of `len` bytes that is not a `T`. Out of
/// line and cold: the decode it leaves is small enough to be inlined at
/// every `get` of a program (with the formatting inline, a second call site
/// of the same queue type's `get` outlined the decode from the consumer's
/// loop: 0.85x the single-item SPSC throughput, `docs/performance.md`).
#[cold]
#[inline(never)]
fn pod_length_mismatch<T>(len: usize) -> Error {
    Error::Corrupt {
        segment: "queue".into(),
        what: format!("length of a {} message", std::any::type_name::<T>()),
        expected: format!("{} bytes", std::mem::size_of::<T>()),
        found: format!("{len} bytes"),
    }
}

/// The type fingerprint of a channel of `T` with codec `C`.
pub(crate) fn fingerprint<T, C: Codec<T>>() -> TypeFingerprint {
    let mut fp = TypeFingerprint::of::<T>();
    fp.hash = crate::segment::header::fnv1a(
        format!("{}/{}", std::any::type_name::<T>(), C::NAME).as_bytes(),
    );
    fp
}
