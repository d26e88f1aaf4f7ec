//! Which processes hold each end of a pipe direction.
//!
//! Each ring segment of a pipe has two [`EndTable`]s (senders, receivers) of
//! `(pid, start time, count)` entries. A process registers once per handle it
//! creates or receives and unregisters when the last clone drops; a process
//! that dies leaves its entry, which reads as gone because its pid is dead
//! (or reused with another start time). See `docs/protocols/pipe.md`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::chan::Chan;
use crate::error::Result;
use crate::segment::ShmSafe;
use crate::sync::atomic::{AtomicU32, AtomicU64};
use crate::sync::park::Futex;
use crate::sys::task::{self, TaskId};

/// Entries per end table.
const END_ENTRIES: usize = 15;

/// One process holding an end of a pipe: pid, its start time, handle count.
#[repr(C)]
#[derive(Debug, Default)]
struct EndEntry {
    /// Process id, 0 when the entry is free.
    pid: AtomicU32,
    /// How many registrations (handles' shared states) the process holds.
    count: AtomicU32,
    /// The process's start time (pid-reuse check), or a transit deadline.
    start: AtomicU64,
}

/// The processes holding one end of a pipe direction.
#[repr(C)]
#[derive(Debug, Default)]
struct EndTable {
    /// Entries; a free entry has pid 0.
    entries: [EndEntry; END_ENTRIES],
    /// Non-zero once some registration failed because the table was full
    /// (then the end is assumed alive forever).
    overflow: AtomicU32,
    /// Non-zero once any process registered at this end (a named pipe's
    /// other end may not have connected yet: that end is not gone).
    connected: AtomicU32,
    /// Reserved.
    spare: [AtomicU32; 2],
}

/// A pipe direction's two end tables `[senders, receivers]`, in its
/// channel's front area (`chan/layout.rs`).
#[repr(C)]
#[derive(Debug, Default)]
struct Ends([EndTable; 2]);

const _: () = assert!(std::mem::size_of::<Ends>() == 512);

// SAFETY: #[repr(C)], only fixed-width std atomics (every bit pattern valid,
// shared mutation atomic-only), no pointers.
unsafe impl ShmSafe for Ends {}

/// Serialises this process's table edits (other processes edit only their
/// own entries, or clear dead ones with a CAS).
static EDIT: Mutex<()> = Mutex::new(());

/// Which end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// Writes into the ring.
    Sender = 0,
    /// Reads from the ring.
    Receiver = 1,
}

impl Role {
    fn other(self) -> Role {
        match self {
            Role::Sender => Role::Receiver,
            Role::Receiver => Role::Sender,
        }
    }
}

/// One end of one ring, registered for this process; unregisters on drop.
#[derive(Debug)]
pub(crate) struct EndInner {
    pub(crate) chan: Chan,
    pub(crate) role: Role,
    pid: u32,
    slot: Option<usize>,
    /// A received message that did not fit the caller's buffer
    /// (`recv_bytes_into`), kept for this end's next receive.
    held: Mutex<Option<Vec<u8>>>,
    /// Whether `held` has a message: one load on every receive instead of
    /// a lock.
    has_held: AtomicBool,
}

/// A shareable registered end (clones share one registration).
pub(crate) type End = Arc<EndInner>;

fn table(chan: &Chan, role: Role) -> &EndTable {
    &chan.front::<Ends>().0[role as usize]
}

/// Marks an entry that holds handles in transit to a child: its `start`
/// field is then this bit and a `CLOCK_MONOTONIC` deadline in nanoseconds.
const TRANSIT: u64 = 1 << 63;
/// How long a handle in transit keeps its end alive before a child claims it.
const TRANSIT_TTL_NS: u64 = 30_000_000_000;

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

fn entry_alive(pid: u32, start: u64) -> bool {
    if pid == 0 {
        return false;
    }
    if start & TRANSIT != 0 {
        // Handles sent to a child that has not registered yet: alive while the
        // sender lives and the deadline has not passed.
        return monotonic_ns() < start & !TRANSIT && task::pid_exists(pid);
    }
    if start == 0 {
        // Being registered right now: alive if the pid exists.
        return task::pid_exists(pid);
    }
    TaskId { tid: pid, start }.is_alive()
}

/// Takes an entry that is empty or names a dead holder for `pid` with start
/// word `start` (a start time, or a transit deadline) and a count of 1;
/// `None` when every entry names a live holder.
fn claim_free_entry(t: &EndTable, pid: u32, start: u64) -> Option<usize> {
    // Relaxed: entries are advisory liveness records (see register).
    for (i, e) in t.entries.iter().enumerate() {
        let cur = e.pid.load(Ordering::Relaxed);
        let free = cur == 0 || !entry_alive(cur, e.start.load(Ordering::Relaxed));
        if free
            && e.pid
                .compare_exchange(cur, pid, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            e.start.store(start, Ordering::Relaxed);
            e.count.store(1, Ordering::Relaxed);
            return Some(i);
        }
    }
    None
}

/// Registers this process as holding `role` of `chan`.
pub(crate) fn register(chan: Chan, role: Role) -> Result<End> {
    let _g = EDIT.lock();
    let pid = task::pid();
    let start = task::start_time(pid).unwrap_or(1);
    let found = add_holder(&chan, role, pid, start);
    let end = Arc::new(EndInner {
        chan,
        role,
        pid,
        slot: found,
        held: Mutex::new(None),
        has_held: AtomicBool::new(false),
    });
    super::forked::track(&end);
    Ok(end)
}

/// Counts one more registration of process `pid` (started at `start`) at
/// `role` of `chan`; its entry, or `None` when the table is full. The
/// caller holds `EDIT`.
fn add_holder(chan: &Chan, role: Role, pid: u32, start: u64) -> Option<usize> {
    let t = table(chan, role);
    // Relaxed throughout: entries are advisory liveness records; a reader
    // that sees a half-written entry treats start 0 as "pid exists".
    let mut found = None;
    for (i, e) in t.entries.iter().enumerate() {
        if e.pid.load(Ordering::Relaxed) == pid && e.start.load(Ordering::Relaxed) == start {
            e.count.fetch_add(1, Ordering::Relaxed);
            found = Some(i);
            break;
        }
    }
    if found.is_none() {
        found = claim_free_entry(t, pid, start);
    }
    if found.is_none() {
        // Table full: the end can no longer be proven gone.
        t.overflow.store(1, Ordering::Relaxed);
    }
    t.connected.store(1, Ordering::Relaxed);
    found
}

/// Takes one registration of `pid` off entry `i` of `role` of `chan`; the
/// last one frees the entry and wakes the ring's sleepers (they re-check
/// whether the end is gone). The caller holds `EDIT`.
fn drop_holder(chan: &Chan, role: Role, i: usize, pid: u32) {
    let e = &table(chan, role).entries[i.min(END_ENTRIES - 1)];
    // Relaxed: see register.
    if e.pid.load(Ordering::Relaxed) == pid && e.count.fetch_sub(1, Ordering::Relaxed) == 1 {
        e.start.store(0, Ordering::Relaxed);
        // Release: a peer that sees the entry free also sees the messages we
        // sent (SYNC POINT: end-gone, paired with the Acquire in `gone`).
        e.pid.store(0, Ordering::Release);
        chan.ring().notify_all(&Futex);
    }
}

/// The entry of process `pid` (started at `start`) at `role` of `chan`.
fn entry_of(chan: &Chan, role: Role, pid: u32, start: u64) -> Option<usize> {
    // Relaxed: see register.
    table(chan, role).entries.iter().position(|e| {
        e.pid.load(Ordering::Relaxed) == pid && e.start.load(Ordering::Relaxed) == start
    })
}

/// What a fork needs to hand this process's ends to the child: see
/// `forked.rs`. The caller holds none of the locks.
pub(super) mod for_fork {
    use super::*;

    /// One more registration on the entry of this process (`me`, started
    /// at `start`) at `end` (kept while the parent finds out whether the
    /// child captured the end); the entry, or `None` if this process holds
    /// no registration there (an end it inherited but was not given).
    pub(crate) fn hold(end: &EndInner, me: u32, start: u64) -> Option<usize> {
        let _g = EDIT.lock();
        let i = entry_of(&end.chan, end.role, me, start)?;
        // Relaxed: see register.
        table(&end.chan, end.role).entries[i]
            .count
            .fetch_add(1, Ordering::Relaxed);
        Some(i)
    }

    /// Takes back a [`hold`] on entry `slot` of `role` of `chan`.
    pub(crate) fn unhold(chan: &Chan, role: Role, slot: usize, pid: u32) {
        let _g = EDIT.lock();
        drop_holder(chan, role, slot, pid);
    }

    /// Registers the forked `child` (started at `start`) as holding `role`
    /// of `chan`.
    pub(crate) fn register_child(chan: &Chan, role: Role, child: u32, start: u64) {
        let _g = EDIT.lock();
        add_holder(chan, role, child, start);
    }
}

/// Records one handle of `role` of `chan` in transit from this process to a
/// child (called while serializing it for a launch), so the end does not
/// read as gone between our drop and the child's registration.
pub(crate) fn send_in_transit(chan: &Chan, role: Role) {
    let _g = EDIT.lock();
    let pid = task::pid();
    let t = table(chan, role);
    let deadline = (monotonic_ns() + TRANSIT_TTL_NS) | TRANSIT;
    t.connected.store(1, Ordering::Relaxed);
    // Relaxed throughout: advisory records, as in register.
    for e in &t.entries {
        if e.pid.load(Ordering::Relaxed) == pid && e.start.load(Ordering::Relaxed) & TRANSIT != 0 {
            e.start.store(deadline, Ordering::Relaxed);
            e.count.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    if claim_free_entry(t, pid, deadline).is_none() {
        t.overflow.store(1, Ordering::Relaxed);
    }
}

/// Claims one handle in transit from our parent (after registering ourselves).
fn claim_in_transit(t: &EndTable) {
    // SAFETY: getppid has no preconditions and cannot fail.
    let parent = unsafe { libc::getppid() } as u32;
    for e in &t.entries {
        // Relaxed: advisory records, as in register.
        if e.pid.load(Ordering::Relaxed) == parent && e.start.load(Ordering::Relaxed) & TRANSIT != 0
        {
            let mut c = e.count.load(Ordering::Relaxed);
            while c > 0 {
                match e
                    .count
                    .compare_exchange(c, c - 1, Ordering::Relaxed, Ordering::Relaxed)
                {
                    Ok(_) => {
                        if c == 1 {
                            let _ = e.pid.compare_exchange(
                                parent,
                                0,
                                Ordering::Relaxed,
                                Ordering::Relaxed,
                            );
                        }
                        return;
                    }
                    Err(v) => c = v,
                }
            }
        }
    }
}

/// Registers a handle received from a parent: ourselves first, then drop the
/// parent's in-transit record.
pub(crate) fn register_received(chan: Chan, role: Role) -> Result<End> {
    let end = register(chan, role)?;
    let _g = EDIT.lock();
    claim_in_transit(table(&end.chan, role));
    Ok(end)
}

impl Drop for EndInner {
    fn drop(&mut self) {
        let me = task::pid();
        if me != self.pid {
            self.drop_in_forked_child(me);
            return;
        }
        let Some(i) = self.slot else { return };
        let _g = EDIT.lock();
        drop_holder(&self.chan, self.role, i, self.pid);
    }
}

impl EndInner {
    /// A forked child's copy: the parent registers the child for the ends
    /// its closure captured (`forked.rs`) right after the fork, which a
    /// quick child may beat; only a captured end can be dropped here, so
    /// wait (bounded) for that registration, then take it back.
    #[cold]
    fn drop_in_forked_child(&self, me: u32) {
        let start = task::start_time(me).unwrap_or(1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(200);
        loop {
            {
                let _g = EDIT.lock();
                if let Some(i) = entry_of(&self.chan, self.role, me, start) {
                    drop_holder(&self.chan, self.role, i, me);
                    return;
                }
            }
            if std::time::Instant::now() >= deadline {
                return; // never registered (not captured, or the table was full)
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Takes back the message a too-small `recv_bytes_into` left, if any.
    #[inline]
    pub(crate) fn take_held(&self) -> Option<Vec<u8>> {
        // Relaxed: `held` itself is guarded by its mutex; this flag only
        // spares the lock when nothing is held.
        if !self.has_held.load(Ordering::Relaxed) {
            return None;
        }
        let mut h = self.held.lock();
        self.has_held.store(false, Ordering::Relaxed);
        h.take()
    }

    /// Keeps `msg` for the next receive on this end (it goes first).
    pub(crate) fn hold(&self, msg: Vec<u8>) {
        let mut h = self.held.lock();
        *h = Some(msg);
        // Relaxed: as in take_held (the mutex orders the message itself).
        self.has_held.store(true, Ordering::Relaxed);
    }

    /// Whether a held message waits.
    pub(crate) fn holds(&self) -> bool {
        // Relaxed: as in take_held.
        self.has_held.load(Ordering::Relaxed)
    }

    /// Whether any process (live or not) is registered at the other end: a
    /// cheap check without `/proc` reads, for every send.
    #[inline]
    pub(crate) fn peer_registered(&self) -> bool {
        let t = table(&self.chan, self.role.other());
        // Relaxed: advisory, see register; dead holders are found on slow paths.
        t.overflow.load(Ordering::Relaxed) != 0
            || t.connected.load(Ordering::Relaxed) == 0
            || t.entries.iter().any(|e| e.pid.load(Ordering::Relaxed) != 0)
    }

    /// Whether no live process holds the other end.
    /// Whether the other end is gone as far as its table says without
    /// asking `/proc`: every handle was dropped (an end whose process died
    /// still has an entry: [`peer_gone`](Self::peer_gone) finds it).
    pub(crate) fn peer_dropped(&self) -> bool {
        let t = table(&self.chan, self.role.other());
        // Relaxed: as in peer_gone (its Acquire loads decide).
        if t.overflow.load(Ordering::Relaxed) != 0 || t.connected.load(Ordering::Relaxed) == 0 {
            return false;
        }
        // Acquire: SYNC POINT: end-gone.
        t.entries.iter().all(|e| e.pid.load(Ordering::Acquire) == 0)
    }

    pub(crate) fn peer_gone(&self) -> bool {
        let t = table(&self.chan, self.role.other());
        // Relaxed: a full table means "cannot tell", and an end nobody has
        // connected to yet is not gone: never gone in both cases.
        if t.overflow.load(Ordering::Relaxed) != 0 || t.connected.load(Ordering::Relaxed) == 0 {
            return false;
        }
        !t.entries.iter().any(|e| {
            // Acquire: SYNC POINT: end-gone.
            let pid = e.pid.load(Ordering::Acquire);
            pid != 0 && entry_alive(pid, e.start.load(Ordering::Relaxed))
        })
    }
}
