"""The peers' figures for BENCHMARKS.md, on the same workloads as engine_bench.

  /usr/bin/python3 tools/bench/peers.py joblib-trivial N
  /usr/bin/python3 tools/bench/peers.py joblib-pi N ORDER
  /usr/bin/python3 tools/bench/peers.py serial-pi N ORDER
  mpiexec -n 3 --oversubscribe /usr/bin/python3 -m mpi4py.futures tools/bench/peers.py mpi4py-trivial N CHUNK
  mpiexec -n 3 --oversubscribe /usr/bin/python3 -m mpi4py.futures tools/bench/peers.py mpi4py-pi N ORDER
"""
import math
import sys
import time


def trivial(x):
    return math.sqrt(x * x)


def pi(order):
    s = 0.0
    for k in range(10 ** order):
        s += (4.0 if k % 2 == 0 else -4.0) / (2 * k + 1)
    return s


def report(name, value, unit):
    print("%-40s %14.4f %s" % (name, value, unit), flush=True)


def main():
    mode = sys.argv[1]
    n = int(sys.argv[2])
    arg = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    t0 = time.perf_counter()
    if mode == "serial-pi":
        for _ in range(n):
            pi(arg)
        report("python serial pi: seconds", time.perf_counter() - t0, "s")
    elif mode.startswith("joblib"):
        from joblib import Parallel, delayed
        if mode == "joblib-trivial":
            Parallel(n_jobs=2)(delayed(trivial)(float(i)) for i in range(n))
            report("joblib (loky, 2 workers) trivial", n / (time.perf_counter() - t0), "tasks/s")
        else:
            Parallel(n_jobs=2)(delayed(pi)(arg) for _ in range(n))
            report("joblib (loky, 2 workers) pi: seconds", time.perf_counter() - t0, "s")
    elif mode.startswith("mpi4py"):
        from mpi4py.futures import MPIPoolExecutor
        with MPIPoolExecutor() as ex:
            t0 = time.perf_counter()
            if mode == "mpi4py-trivial":
                list(ex.map(trivial, (float(i) for i in range(n)), chunksize=arg))
                report("mpi4py.futures trivial chunksize %d" % arg, n / (time.perf_counter() - t0), "tasks/s")
            else:
                list(ex.map(pi, [arg] * n, chunksize=1))
                report("mpi4py.futures pi: seconds", time.perf_counter() - t0, "s")


if __name__ == "__main__":
    main()
