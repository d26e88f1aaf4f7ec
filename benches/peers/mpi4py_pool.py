"""The Python peer of `cargo bench --bench mpi`: mpi4py.futures' MPIPoolExecutor.

Run as `mpirun -n N python3 -m mpi4py.futures mpi4py_pool.py WORKLOAD N`; rank 0
prints one number: tasks/s for `map`, ns per round trip for `apply`.
"""
import sys
import time

from mpi4py.futures import MPIPoolExecutor


def tiny(x):
    return x * 2


def main():
    workload, n = sys.argv[1], int(sys.argv[2])
    with MPIPoolExecutor() as ex:
        workers = ex.num_workers
        list(ex.map(tiny, range(1000), chunksize=100))  # warm: workers up, code loaded
        if workload == "map":
            # multiprocessing.Pool.map's default: ceil(n / (4 * workers)).
            chunksize = -(-n // (4 * workers))

            def once():
                t0 = time.perf_counter()
                r = list(ex.map(tiny, range(n), chunksize=chunksize))
                dt = time.perf_counter() - t0
                assert r[-1] == (n - 1) * 2
                return n / dt

            # As the Rust side: the median of 5 maps after 2 untimed ones.
            for _ in range(2):
                once()
            print(sorted(once() for _ in range(5))[2])
        elif workload == "apply":
            t0 = time.perf_counter()
            for i in range(n):
                assert ex.submit(tiny, i).result() == 2 * i
            dt = time.perf_counter() - t0
            print(dt / n * 1e9)
        else:
            raise SystemExit(f"unknown workload {workload}")


if __name__ == "__main__":
    main()
