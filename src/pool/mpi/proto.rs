//! What rank 0 and the worker ranks say to each other
//! (`docs/protocols/pool-mpi.md`): tags, message kinds, and the identity
//! handshake that makes naming a task runner by its code offset safe.

use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Rank 0 -> worker: one message per control step or piece; its first
/// byte is the kind (`MSG_TASK`, [`MSG_TASK_SPLIT`], `MSG_STOP`,
/// [`MSG_HELLO`]).
pub(super) const TAG_CTL: i32 = 1;
/// Rank 0 -> worker: the argument bytes of the [`MSG_TASK_SPLIT`] header
/// sent just before (MPI keeps the order of two messages between the same
/// pair).
pub(super) const TAG_ARGS: i32 = 2;
/// Worker -> rank 0: every message; its first byte is the kind
/// (`MSG_RESULTS`, `MSG_FATAL`, [`MSG_HELLO`]).
pub(super) const TAG_UP: i32 = 3;

/// Rank 0 -> worker: a `TASK` header whose arguments follow on
/// [`TAG_ARGS`]. A piece of at most [`INLINE_MAX`] argument bytes travels
/// as one `MSG_TASK` message, header and arguments together (a small copy
/// costs less than a message); a larger one is not copied behind its
/// header but sent as it is, after it.
pub(super) const MSG_TASK_SPLIT: u8 = 0x11;
/// See [`MSG_TASK_SPLIT`]: one message stays under Open MPI's eager limit
/// on one host (4 KiB), so it needs no rendezvous either.
pub(super) const INLINE_MAX: usize = 4096 - crate::pool::layout::TASK_HDR;

/// Both ways: the identity handshake (postcard [`Hello`] / [`HelloReply`]
/// after the kind byte).
pub(super) const MSG_HELLO: u8 = 0x10;

/// The largest message either side sends (MPI counts are C ints; a task's
/// argument or result above this fails with `MessageTooLarge`).
pub(super) const MAX_MESSAGE: usize = 1 << 30;

/// Which executable a rank runs: its length and a hash of its bytes. Task
/// runners are named by their offset in the executable image, which means
/// the same function only in the same build; ranks of another build are
/// refused before they are sent a single task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Identity {
    pub len: u64,
    pub hash: u64,
    /// Where it was found (for messages only).
    pub path: String,
}

impl Identity {
    pub(super) fn same_build(&self, other: &Identity) -> bool {
        (self.len, self.hash) == (other.len, other.hash)
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} bytes, hash {:#018x})",
            self.path, self.len, self.hash
        )
    }
}

/// Rank 0 -> worker: "run tasks only if you are this build".
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Hello {
    pub exe: Identity,
}

/// Worker -> rank 0: who it is, and whether it accepted.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct HelloReply {
    pub pid: u32,
    pub host: String,
    pub exe: Identity,
    pub accepted: bool,
}

/// A kind byte followed by the postcard encoding of `body`.
pub(super) fn encode<T: Serialize>(kind: u8, body: &T) -> Vec<u8> {
    let mut out = vec![kind];
    // Plain structs of integers and strings: encoding cannot fail.
    crate::wire::to_extend(body, &mut out).unwrap_or_else(|_| unreachable!());
    out
}

/// The body of a message of kind `kind`.
///
/// # Errors
/// `Codec` if the message is of another kind or does not decode.
pub(super) fn decode<T: serde::de::DeserializeOwned>(kind: u8, msg: &[u8]) -> Result<T> {
    match msg.split_first() {
        Some((k, body)) if *k == kind => crate::wire::from_bytes(body)
            .map_err(|e| Error::codec(format!("an MPI message of kind {kind:#x}"), e)),
        _ => Err(Error::codec(
            format!("an MPI message of kind {kind:#x}"),
            postcard::Error::DeserializeBadEncoding,
        )),
    }
}

/// This process's executable identity (computed once: reading and hashing
/// the file takes ~10 ms per 100 MB).
pub(super) fn own_identity() -> Result<&'static Identity> {
    static ID: std::sync::OnceLock<Identity> = std::sync::OnceLock::new();
    if let Some(id) = ID.get() {
        return Ok(id);
    }
    let id = identity_of("/proc/self/exe")?;
    Ok(ID.get_or_init(|| id))
}

fn identity_of(path: &str) -> Result<Identity> {
    let ctx = |e| Error::os(format!("reading {path} to identify this build"), e);
    let mut f = std::fs::File::open(path).map_err(ctx)?;
    let mut h = Hasher::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(ctx)?;
        if n == 0 {
            break;
        }
        h.write(&buf[..n]);
        len += n as u64;
    }
    let shown =
        std::fs::read_link(path).map_or_else(|_| path.to_owned(), |p| p.display().to_string());
    Ok(Identity {
        len,
        hash: h.finish(len),
        path: shown,
    })
}

/// A fast 64-bit hash of a byte stream (a word at a time, FxHash's
/// multiply-rotate). It tells builds apart; it does not resist forgery,
/// and need not: every rank of a job runs with the same rights.
#[derive(Default)]
struct Hasher {
    h: u64,
    /// Bytes of a word not complete yet (reads need not be word-sized).
    tail: Vec<u8>,
}

const K: u64 = 0x517c_c1b7_2722_0a95;

impl Hasher {
    fn word(&mut self, w: u64) {
        self.h = (self.h.rotate_left(5) ^ w).wrapping_mul(K);
    }

    fn write(&mut self, mut bytes: &[u8]) {
        if !self.tail.is_empty() {
            let take = (8 - self.tail.len()).min(bytes.len());
            self.tail.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.tail.len() < 8 {
                return;
            }
            let w = u64::from_le_bytes(self.tail[..8].try_into().unwrap_or_default());
            self.word(w);
            self.tail.clear();
        }
        let mut words = bytes.chunks_exact(8);
        for c in &mut words {
            self.word(u64::from_le_bytes(c.try_into().unwrap_or_default()));
        }
        self.tail.extend_from_slice(words.remainder());
    }

    fn finish(mut self, len: u64) -> u64 {
        let mut last = [0u8; 8];
        last[..self.tail.len()].copy_from_slice(&self.tail);
        self.word(u64::from_le_bytes(last));
        self.word(len);
        self.h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(chunks: &[&[u8]]) -> u64 {
        let mut h = Hasher::default();
        let mut len = 0;
        for c in chunks {
            h.write(c);
            len += c.len() as u64;
        }
        h.finish(len)
    }

    #[test]
    fn hash_ignores_how_the_stream_is_cut() {
        let data: Vec<u8> = (0..100u8).collect();
        let whole = hash(&[&data]);
        assert_eq!(whole, hash(&[&data[..3], &data[3..50], &data[50..]]));
        assert_eq!(whole, hash(&[&data[..8], &data[8..9], &data[9..]]));
        // One byte more (a zero, as padding would be) is another build.
        let mut longer = data.clone();
        longer.push(0);
        assert_ne!(whole, hash(&[&longer]));
        let mut changed = data;
        changed[77] ^= 1;
        assert_ne!(whole, hash(&[&changed]));
    }

    #[test]
    fn own_identity_is_stable_and_messages_roundtrip() {
        let a = own_identity().unwrap();
        assert!(a.len > 0);
        assert!(a.same_build(&identity_of("/proc/self/exe").unwrap()));
        let msg = encode(MSG_HELLO, &Hello { exe: a.clone() });
        let back: Hello = decode(MSG_HELLO, &msg).unwrap();
        assert_eq!(&back.exe, a);
        assert!(decode::<Hello>(MSG_HELLO + 1, &msg).is_err());
        assert!(decode::<Hello>(MSG_HELLO, &msg[..3]).is_err());
    }
}
