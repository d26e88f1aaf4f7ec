//! The worker process: its entry (initializer, then the task loop) and the
//! monomorphized task runners the parent names by offset, the way the
//! launcher names an entry (`process::entry`).

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::fixed;
use super::layout::{
    PoolSeg, ResultsHdr, TaskHdr, MSG_FATAL, MSG_INIT_FAILED, MSG_READY, MSG_STOP, RESULTS_HDR,
};
use crate::chan::bytes::Messages;
use crate::process::entry::{self, EntryReturn};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::wire;

/// A worker sends what it has once its buffer holds this many bytes.
const FLUSH: usize = 64 * 1024;

/// What one task produced, as it travels back to the parent.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Outcome<R> {
    /// The function returned.
    Ok(R),
    /// The function panicked with this message.
    Panicked(String),
    /// The result's encoding exceeds the ring's message limit.
    TooLarge {
        /// Encoded size.
        size: u64,
        /// The limit.
        max: u64,
    },
}

/// How a task function is called with one decoded argument: `f(a)` for
/// `map`, `f(a, b, ..)` for `starmap`. Implemented by the zero-sized
/// wrappers [`Map`] and [`Star`].
pub trait Invoke<A> {
    /// What the function returns.
    type Output;
    /// Calls the function.
    fn invoke(&self, args: A) -> Self::Output;
}

/// `f(a)`: the wrapper `map`, `imap` and `apply` send.
#[derive(Clone, Copy)]
pub(crate) struct Map<F>(pub(crate) F);

impl<F: Fn(A) -> R, A, R> Invoke<A> for Map<F> {
    type Output = R;
    fn invoke(&self, args: A) -> R {
        (self.0)(args)
    }
}

/// `f(a, b, ..)` for a tuple argument: the wrapper `starmap` sends.
#[derive(Clone, Copy)]
pub struct Star<F>(pub(crate) F);

macro_rules! star {
    ($($t:ident $v:ident),+) => {
        impl<F: Fn($($t),+) -> R, $($t,)+ R> Invoke<($($t,)+)> for Star<F> {
            type Output = R;
            fn invoke(&self, ($($v,)+): ($($t,)+)) -> R {
                (self.0)($($v),+)
            }
        }
    };
}
star!(A a);
star!(A a, B b);
star!(A a, B b, C c);
star!(A a, B b, C c, D d);
star!(A a, B b, C c, D d, E e);
star!(A a, B b, C c, D d, E e, G g);

/// The signature every runner instance has: `(expected hash, already
/// verified, argument bytes, item count, emitter) -> Err(message)` if the
/// piece cannot run.
type Runner = fn(u64, bool, &[u8], u32, &mut Emitter<'_>) -> Result<(), String>;

/// The offset and hash naming `run::<G, A>` for the parent to send.
pub(crate) fn runner_of<G, A>() -> (u64, u64)
where
    G: Invoke<A>,
    A: DeserializeOwned,
    G::Output: Serialize,
{
    let r: Runner = run::<G, A>;
    (entry::code_offset(r as usize), runner_hash::<G, A>())
}

fn runner_hash<G: Invoke<A>, A>() -> u64 {
    // A tag keeps task runners apart from launch entries of the same types.
    entry::entry_hash::<G, A, Runner>() ^ 0x7461_736b_7275_6e72
}

/// Runs `count` tasks of one piece: decode an argument, mark it as held,
/// call the function under `catch_unwind`, encode the outcome.
fn run<G, A>(
    hash: u64,
    verified: bool,
    input: &[u8],
    count: u32,
    em: &mut Emitter<'_>,
) -> Result<(), String>
where
    G: Invoke<A>,
    A: DeserializeOwned,
    G::Output: Serialize,
{
    // The hash check formats type names: done once per runner, not per piece.
    if !verified && hash != runner_hash::<G, A>() {
        return Err(format!(
            "expected the task runner the parent sent (hash {hash:#x}), found {}",
            std::any::type_name::<G>()
        ));
    }
    let g = entry::conjure::<G>().ok_or("task function is not zero-sized")?;
    let bad = |k: u32, e: &dyn std::fmt::Display| {
        format!(
            "argument {k} of type {} does not decode: {e}",
            std::any::type_name::<A>()
        )
    };
    let mut rest = input;
    for k in 0..count {
        let arg = if em.fixed_args {
            let at = k as usize * fixed::WIDTH;
            fixed::decode::<A>(input.get(at..).unwrap_or(&[])).map_err(|e| bad(k, &e))?
        } else {
            let (arg, r) = wire::take_from_bytes::<A>(rest).map_err(|e| bad(k, &e))?;
            rest = r;
            arg
        };
        em.begin(k);
        let out = match in_task(|| g.invoke(arg)) {
            Ok(r) => Outcome::Ok(r),
            Err(message) => Outcome::Panicked(message),
        };
        em.push(&out)?;
    }
    Ok(())
}

thread_local! {
    /// True while a task runs: the panic hook stays silent (the message
    /// travels to the parent instead of to stderr).
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` under `catch_unwind`; a panic becomes its message.
pub(crate) fn in_task<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    IN_TASK.with(|t| t.set(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    IN_TASK.with(|t| t.set(false));
    r.map_err(|payload| {
        if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic with a non-string payload".to_owned()
        }
    })
}

/// Silences the panic hook while a task runs (its message travels to the
/// parent instead).
pub(crate) fn quiet_panics_in_tasks() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !IN_TASK.with(Cell::get) {
            default(info);
        }
    }));
}

/// Where a worker's result messages go: its result ring, or (MPI) rank 0.
pub(crate) trait Sink {
    /// The largest message [`send`](Self::send) takes.
    fn max_message(&self) -> usize;
    /// Sends one message made of `parts`, waiting for room as long as it takes.
    fn send(&self, parts: &[&[u8]]);
}

impl Sink for Messages {
    fn max_message(&self) -> usize {
        Messages::max_message(self)
    }

    fn send(&self, parts: &[&[u8]]) {
        send(self, parts);
    }
}

/// Collects the outcomes of a piece and sends them in `RESULTS` messages.
pub(crate) struct Emitter<'a> {
    sink: &'a dyn Sink,
    current: &'a AtomicU64,
    seq: u32,
    /// The piece's arguments are 8-byte scalars.
    fixed_args: bool,
    first: u32,
    count: u32,
    /// The buffered results are 8-byte `Ok` scalars (else postcard `Outcome`s).
    fixed: bool,
    buf: Vec<u8>,
    /// The runner whose type hash was last checked successfully.
    last_ok: Option<(u64, u64)>,
}

impl<'a> Emitter<'a> {
    /// An emitter of result messages into `sink`; `current` is where it
    /// marks the item it runs.
    pub(crate) fn new(sink: &'a dyn Sink, current: &'a AtomicU64) -> Emitter<'a> {
        Emitter {
            sink,
            current,
            seq: 0,
            fixed_args: false,
            first: 0,
            count: 0,
            fixed: false,
            buf: Vec::with_capacity(FLUSH + 1024),
            last_ok: None,
        }
    }

    /// Runs the piece `hdr` with arguments `input` and sends its results;
    /// a piece that cannot run (a runner of another type, arguments that do
    /// not decode) is answered with `FATAL` after the results before it.
    ///
    /// # Safety
    /// - `hdr.runner` was computed by [`runner_of`] in a process running the
    ///   very same executable image, so it names a runner instance with the
    ///   `Runner` signature in this image (the runner checks its type hash
    ///   before touching the arguments).
    pub(crate) unsafe fn run_piece(&mut self, hdr: &TaskHdr, input: &[u8]) {
        self.seq = hdr.seq;
        self.fixed_args = hdr.fixed;
        self.first = 0;
        self.count = 0;
        self.buf.clear();
        // SAFETY: the caller's guarantee is `runner_at`'s precondition.
        let runner = unsafe { runner_at(hdr.runner) };
        let verified = self.last_ok == Some((hdr.runner, hdr.hash));
        let outcome = runner(hdr.hash, verified, input, hdr.count, self);
        if outcome.is_ok() {
            self.last_ok = Some((hdr.runner, hdr.hash));
        }
        self.flush();
        if let Err(m) = outcome {
            send_text(self.sink, MSG_FATAL, &m);
        }
    }

    fn begin(&mut self, k: u32) {
        // SYNC POINT: pool-current. Release: a parent that reaps this
        // process reads which item it held (Acquire in the dispatcher).
        self.current.store(
            u64::from(self.seq) << 32 | u64::from(k + 1),
            Ordering::Release,
        );
    }

    fn push<R: Serialize>(&mut self, out: &Outcome<R>) -> Result<(), String> {
        // Fast path: an `Ok` scalar joins a buffer of scalars.
        let fx = match out {
            Outcome::Ok(r) => fixed::encode(r),
            _ => None,
        };
        if fx.is_some() != self.fixed && self.count > 0 {
            self.flush(); // one format per message
        }
        self.fixed = fx.is_some();
        if let Some(bytes) = fx {
            self.buf.extend_from_slice(&bytes);
            self.count += 1;
            if self.buf.len() >= FLUSH {
                self.flush();
            }
            return Ok(());
        }
        self.push_slow(out)
    }

    fn push_slow<R: Serialize>(&mut self, out: &Outcome<R>) -> Result<(), String> {
        let mark = self.buf.len();
        let max = self.sink.max_message() - RESULTS_HDR;
        let encoded = wire::to_extend(out, &mut self.buf);
        let replacement = match (encoded, out) {
            (Ok(()), _) if self.buf.len() - mark <= max => None,
            // A panic is always `TaskPanicked`: its message is cut to fit
            // (the tag and the length prefix take at most 6 bytes).
            (Ok(()), Outcome::Panicked(m)) => Some(Outcome::<R>::Panicked(
                fit_message(m, max.saturating_sub(6)).into_owned(),
            )),
            (Ok(()), _) => Some(Outcome::<R>::TooLarge {
                size: (self.buf.len() - mark) as u64,
                max: max as u64,
            }),
            (Err(e), _) => Some(Outcome::<R>::Panicked(format!(
                "the task's result does not encode: {e}"
            ))),
        };
        if let Some(r) = replacement {
            self.buf.truncate(mark);
            wire::to_extend(&r, &mut self.buf).map_err(|e| e.to_string())?;
        }
        if self.buf.len() > max {
            // This item fits alone but not with the ones before it.
            let item = self.buf.split_off(mark);
            self.flush();
            self.buf = item;
        }
        self.count += 1;
        if self.buf.len() >= FLUSH.min(max / 2) {
            self.flush();
        }
        Ok(())
    }

    /// Sends what was collected (blocking while the result ring is full:
    /// the parent always drains it; if it died, the parent-death signal ends us).
    pub(crate) fn flush(&mut self) {
        if self.count == 0 {
            return;
        }
        let hdr = ResultsHdr {
            seq: self.seq,
            first: self.first,
            count: self.count,
            fixed: self.fixed,
        }
        .encode();
        self.sink.send(&[&hdr, &self.buf]);
        self.first += self.count;
        self.count = 0;
        self.buf.clear();
    }
}

/// `msg` if it has at most `max` bytes; else as much of its start as fits
/// (cut at a character boundary) with a marker saying how long it was.
fn fit_message(msg: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if msg.len() <= max {
        return msg.into();
    }
    let marker = format!("... [truncated: the message had {} bytes]", msg.len());
    let mut end = max.saturating_sub(marker.len());
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = String::with_capacity(end + marker.len());
    cut.push_str(&msg[..end]);
    cut.push_str(&marker);
    cut.truncate(max); // only when `max` is below the marker's own length
    cut.into()
}

/// Sends a start-up or `FATAL` message: kind `kind`, then `text`, cut to fit
/// the ring.
fn send_text(sink: &dyn Sink, kind: u8, text: &str) {
    let text = fit_message(text, sink.max_message() - 1);
    sink.send(&[&[kind], text.as_bytes()]);
}

/// Sends one message, waiting for room as long as it takes.
fn send(ring: &Messages, parts: &[&[u8]]) {
    let len = parts.iter().map(|p| p.len()).sum();
    loop {
        match ring.try_send(parts) {
            Ok(true) => return,
            Ok(false) => {
                ring.wait_space(len, Some(Instant::now() + Duration::from_secs(1)));
            }
            Err(e) => abort(&format!("cannot send to the parent: {e}")),
        }
    }
}

/// Rebuilds a task runner from the code offset the parent sent.
///
/// # Safety
/// - `offset` was computed by `runner_of` in a process running the very same
///   executable (the launcher compared `/proc/self/exe` before this worker
///   started), so it names a runner instance with the `Runner` signature in
///   this image.
unsafe fn runner_at(offset: u64) -> Runner {
    // SAFETY: by the caller's guarantee the address is a function with the
    // `Runner` signature in this image; fn pointers and usize have the same
    // size on every Linux target.
    unsafe { std::mem::transmute::<usize, Runner>(entry::code_addr(offset)) }
}

#[cold]
fn abort(msg: &str) -> ! {
    eprintln!("shmproc pool worker {}: {msg}", std::process::id());
    std::process::abort()
}

/// Aborts the process if dropped during a panic outside a task: the loop's
/// own state would be unknown (rayon-core's `AbortIfPanic`).
struct AbortIfPanic;

impl Drop for AbortIfPanic {
    fn drop(&mut self) {
        abort("unexpected panic in the worker loop");
    }
}

/// What a worker process is launched with (besides its initializer's
/// arguments).
#[derive(Serialize, Deserialize)]
pub(crate) struct WorkerArgs {
    pub seg: PoolSeg,
    pub slot: u32,
    /// Pieces after which the worker exits (0 = no limit).
    pub max_tasks: u64,
}

/// The pool's default initializer: nothing.
pub(crate) fn no_init(_: ()) {}

/// The worker's entry point: run the initializer `I`, report, then serve.
pub(crate) fn worker_main<I, IA, IR>((w, init_args): (WorkerArgs, IA))
where
    I: FnOnce(IA) -> IR,
    IR: EntryReturn,
{
    let guard = AbortIfPanic;
    quiet_panics_in_tasks();
    let (Ok(tasks), Ok(results), Ok(current)) = (
        w.seg.task_ring(w.slot),
        w.seg.result_ring(w.slot),
        w.seg.current(w.slot),
    ) else {
        abort("the pool segment does not hold this worker's slot");
    };
    let init = entry::conjure::<I>().ok_or_else(|| "initializer is not zero-sized".to_owned());
    match init.and_then(|f| in_task(|| f(init_args).into_outcome()).and_then(|r| r)) {
        Ok(()) => send(&results, &[&[MSG_READY]]),
        Err(msg) => {
            send_text(&results, MSG_INIT_FAILED, &msg);
            std::mem::forget(guard);
            return;
        }
    }
    serve(&tasks, &results, current, w.max_tasks);
    std::mem::forget(guard);
}

/// The task loop: receive a piece, run it, send its results; until `STOP`
/// or `max_tasks` pieces.
fn serve(tasks: &Messages, results: &Messages, current: &AtomicU64, max_tasks: u64) {
    let mut msg = Vec::new();
    let mut done = 0u64;
    let mut em = Emitter::new(results, current);
    loop {
        match tasks.try_recv(&mut msg) {
            Ok(true) => {}
            Ok(false) => {
                tasks.wait_data(Some(Instant::now() + Duration::from_secs(1)));
                continue;
            }
            Err(e) => abort(&format!("bad task ring: {e}")),
        }
        if msg.first() == Some(&MSG_STOP) {
            return;
        }
        let Some((hdr, input)) = TaskHdr::decode(&msg) else {
            abort("a task message that does not decode");
        };
        // SAFETY: task messages come only from our parent (the pool segment
        // is anonymous: it reaches the parent and its workers alone), which
        // computed the offset with `runner_of` (run_piece's precondition).
        unsafe { em.run_piece(&hdr, input) };
        // SYNC POINT: pool-current (as in `Emitter::begin`): the parent
        // reads that no item is held.
        current.store(0, Ordering::Release);
        done += 1;
        if max_tasks != 0 && done >= max_tasks {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x: u64) -> u64 {
        x * x
    }

    fn boom(x: u32) -> u32 {
        if x == 2 {
            panic!("boom at {x}");
        }
        x
    }

    fn add(a: u32, b: u32) -> u32 {
        a + b
    }

    fn run_here<G: Invoke<A>, A: DeserializeOwned + Serialize>(
        args: &[A],
    ) -> Vec<crate::Result<G::Output>>
    where
        G::Output: Serialize + DeserializeOwned,
    {
        let seg = PoolSeg::create(1, 1 << 16).unwrap();
        let ring = seg.result_ring(0).unwrap();
        let cur = seg.current(0).unwrap();
        let mut input = Vec::new();
        for a in args {
            input = postcard::to_extend(a, input).unwrap();
        }
        let (off, hash) = runner_of::<G, A>();
        // SAFETY: the offset was computed by `runner_of` in this process.
        let r = unsafe { std::mem::transmute::<usize, Runner>(entry::code_addr(off)) };
        let mut em = Emitter::new(&ring, cur);
        em.seq = 9;
        quiet_panics_in_tasks();
        r(hash, false, &input, args.len() as u32, &mut em).unwrap();
        assert!(r(hash ^ 1, false, &input, 1, &mut em).is_err());
        em.flush();
        assert_eq!(cur.load(Ordering::Relaxed), 9 << 32 | args.len() as u64);
        let mut msg = Vec::new();
        let mut outs = Vec::new();
        while ring.try_recv(&mut msg).unwrap() {
            let h = ResultsHdr::decode(&msg).unwrap();
            assert_eq!((h.seq, h.first), (9, outs.len() as u32));
            let a = super::super::job::Arrival::Results {
                fixed: h.fixed,
                first: u64::from(h.first),
                count: h.count,
                bytes: msg.clone(),
                at: RESULTS_HDR,
            };
            super::super::job::decode::<G::Output>(a, |_, r| outs.push(r));
        }
        assert_eq!(outs.len(), args.len());
        outs
    }

    fn long_panic(x: u32) -> u32 {
        if x == 0 {
            panic!("{}", "é".repeat(50_000));
        }
        x
    }

    #[test]
    fn a_long_panic_message_is_cut_to_fit_not_lost() {
        fn lp<G: Invoke<u32, Output = u32>>(_: G) -> Vec<crate::Result<u32>> {
            run_here::<G, u32>(&[0, 7])
        }
        let outs = lp(Map(long_panic));
        let Err(crate::Error::TaskPanicked { message }) = &outs[0] else {
            panic!("expected TaskPanicked, found {:?}", outs[0]);
        };
        assert!(message.starts_with("éé"), "{}", &message[..20]);
        assert!(
            message.ends_with("... [truncated: the message had 100000 bytes]"),
            "{}",
            &message[message.len() - 60..]
        );
        assert!(message.len() < 100_000);
        assert!(matches!(outs[1], Ok(7)));
    }

    #[test]
    fn fit_message_cuts_at_a_character_boundary() {
        assert_eq!(fit_message("short", 5), "short");
        let long = "é".repeat(30); // 60 bytes; the marker has 41
        let cut = fit_message(&long, 45);
        assert_eq!(cut, "éé... [truncated: the message had 60 bytes]");
        let cut = fit_message(&long, 44); // one byte less: a whole character less
        assert_eq!(cut, "é... [truncated: the message had 60 bytes]");
        assert_eq!(fit_message(&long, 3), "...");
    }

    #[test]
    fn runner_runs_and_catches_panics() {
        fn sq<G: Invoke<u64, Output = u64>>(_: G) -> Vec<crate::Result<u64>> {
            run_here::<G, u64>(&[1, 2, 3])
        }
        let outs: Vec<u64> = sq(Map(square)).into_iter().map(Result::unwrap).collect();
        assert_eq!(outs, [1, 4, 9]);
        fn bm<G: Invoke<u32, Output = u32>>(_: G) -> Vec<crate::Result<u32>> {
            run_here::<G, u32>(&[1, 2, 3])
        }
        let outs = bm(Map(boom));
        assert!(matches!(outs[0], Ok(1)));
        assert!(
            matches!(&outs[1], Err(crate::Error::TaskPanicked { message }) if message == "boom at 2")
        );
        assert!(matches!(outs[2], Ok(3)));
        fn st<G: Invoke<(u32, u32), Output = u32>>(_: G) -> Vec<crate::Result<u32>> {
            run_here::<G, (u32, u32)>(&[(1, 2), (3, 4)])
        }
        assert!(matches!(st(Star(add))[..], [Ok(3), Ok(7)]));
        fn strings<G: Invoke<String, Output = String>>(_: G) -> Vec<crate::Result<String>> {
            run_here::<G, String>(&["a".into(), "b".into()])
        }
        let outs: Vec<String> = strings(Map(|s: String| s + "!"))
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(outs, ["a!", "b!"]);
    }
}
