"""Python multiprocessing peers for `cargo bench --bench compare` (run in benchmarks/).

Usage: python3 python_mp.py <workload> <n> [<workers>]
Prints one line: `<value>` in the unit the Rust side expects for that workload.
Each workload mirrors the Rust one: same message sizes, producers in a separate
process, timing taken around the transfer only (after start-up).
"""
import multiprocessing as mp
import sys
import time


def _produce(q, n):
    for i in range(n):
        q.put(i)
    q.put(None)


def queue_spsc_u64(n):
    """Messages/s of small ints from one producer process to one consumer."""
    q = mp.Queue(1024)
    p = mp.Process(target=_produce, args=(q, n))
    t0 = time.perf_counter()
    p.start()
    got = 0
    while q.get() is not None:
        got += 1
    dt = time.perf_counter() - t0
    p.join()
    assert got == n
    return n / dt


def _echo(conn, n):
    for _ in range(n):
        conn.send_bytes(conn.recv_bytes())


def pipe_pingpong(n):
    """Round-trip latency in ns of an 8-byte message over a duplex Pipe."""
    a, b = mp.Pipe()
    p = mp.Process(target=_echo, args=(b, n + 100))
    p.start()
    msg = b"12345678"
    for _ in range(100):  # warm-up
        a.send_bytes(msg)
        a.recv_bytes()
    t0 = time.perf_counter()
    for _ in range(n):
        a.send_bytes(msg)
        a.recv_bytes()
    dt = time.perf_counter() - t0
    p.join()
    return dt / n * 1e9


def _pick8(i):
    """Which of the 8 connections round i uses (as the Rust side's pick8)."""
    return i * 5 % 8


def _echo_8(conns, n):
    for i in range(n):
        c = conns[_pick8(i)]
        c.send_bytes(c.recv_bytes())


def wait_8_pipes(n):
    """Round-trip latency in ns: send on one of 8 duplex Pipes (all 8 in
    turn), connection.wait over all 8, recv the echo from the ready one."""
    from multiprocessing.connection import wait

    pairs = [mp.Pipe() for _ in range(8)]
    ours = [a for a, _ in pairs]
    p = mp.Process(target=_echo_8, args=([b for _, b in pairs], n + 100))
    p.start()
    msg = b"12345678"

    def round_trip(i):
        k = _pick8(i)
        ours[k].send_bytes(msg)
        ready = wait(ours)
        assert ready == [ours[k]], (ready, k)
        ready[0].recv_bytes()

    for i in range(100):  # warm-up
        round_trip(i)
    t0 = time.perf_counter()
    for i in range(100, n + 100):
        round_trip(i)
    dt = time.perf_counter() - t0
    p.join()
    return dt / n * 1e9


def _tiny(x):
    return x * 2


def pool_map_tiny(n, workers):
    """Tasks/s of Pool.map over a tiny function with the default chunksize."""
    with mp.Pool(workers) as pool:
        pool.map(_tiny, range(1000))  # warm-up: workers started
        t0 = time.perf_counter()
        r = pool.map(_tiny, range(n))
        dt = time.perf_counter() - t0
    assert r[-1] == (n - 1) * 2
    return n / dt


def pool_imap_tiny(n, workers):
    """Tasks/s of Pool.imap with chunksize 1 (one message per task)."""
    with mp.Pool(workers) as pool:
        pool.map(_tiny, range(1000))
        t0 = time.perf_counter()
        s = sum(pool.imap(_tiny, range(n)))
        dt = time.perf_counter() - t0
    assert s == n * (n - 1)
    return n / dt


def pool_apply_rtt(n, workers):
    """Round-trip latency in ns of apply_async(f, x).get()."""
    with mp.Pool(workers) as pool:
        for i in range(100):
            pool.apply_async(_tiny, (i,)).get()
        t0 = time.perf_counter()
        for i in range(n):
            pool.apply_async(_tiny, (i,)).get()
        dt = time.perf_counter() - t0
    return dt / n * 1e9


def _noop():
    pass


def spawn_join(n):
    """Latency in ns of Process(start method fork).start() + join()."""
    ctx = mp.get_context("fork")
    t0 = time.perf_counter()
    for _ in range(n):
        p = ctx.Process(target=_noop)
        p.start()
        p.join()
    dt = time.perf_counter() - t0
    return dt / n * 1e9


WORKLOADS = {
    "queue_spsc_u64": queue_spsc_u64,
    "pipe_pingpong": pipe_pingpong,
    "wait_8_pipes": wait_8_pipes,
    "pool_map_tiny": pool_map_tiny,
    "pool_imap_tiny": pool_imap_tiny,
    "pool_apply_rtt": pool_apply_rtt,
    "spawn_join": spawn_join,
}

if __name__ == "__main__":
    name, n = sys.argv[1], int(sys.argv[2])
    args = [n] + [int(a) for a in sys.argv[3:]]
    print(f"{WORKLOADS[name](*args):.3f}")
