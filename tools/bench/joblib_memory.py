"""joblib.Memory's cost per cache miss and per cache hit, for BENCHMARKS.md.

Usage: /usr/bin/python3 tools/bench/joblib_memory.py [N]   (default 2000 calls)
"""
import sys
import tempfile
import time

from joblib import Memory

n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
with tempfile.TemporaryDirectory() as tmp:
    memory = Memory(tmp, verbose=0)

    @memory.cache
    def f(x):
        return x * 0.5

    t0 = time.perf_counter()
    for i in range(n):
        f(i)
    miss = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for i in range(n):
        f(i)
    hit = (time.perf_counter() - t0) / n
print("joblib.Memory miss %.1f us/call (%.0f calls/s)" % (miss * 1e6, 1 / miss))
print("joblib.Memory hit  %.1f us/call (%.0f calls/s)" % (hit * 1e6, 1 / hit))
