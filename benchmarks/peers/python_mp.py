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
    "pool_map_tiny": pool_map_tiny,
    "pool_imap_tiny": pool_imap_tiny,
    "pool_apply_rtt": pool_apply_rtt,
    "spawn_join": spawn_join,
}

if __name__ == "__main__":
    name, n = sys.argv[1], int(sys.argv[2])
    args = [n] + [int(a) for a in sys.argv[3:]]
    print(f"{WORKLOADS[name](*args):.3f}")
