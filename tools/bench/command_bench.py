#!/usr/bin/python3
"""The benchmark of record: the `mpibatch` command as users run it, timed from the shell.

Runs each workload alternately with its peers, REPS times, and prints a Markdown table of
medians (wall clock from the shell: mpirun's start-up, the check pass and the store's final
work included). Peers: joblib (loky, 2 workers, default batching), mpi4py.futures (2 workers), GNU Parallel
(2 jobs), a plain serial Python loop; install them with `tools/setup.sh --bench`.

  /usr/bin/python3 tools/bench/command_bench.py [--reps 3] [--tasks 1000000] [--store-dir /tmp]

Workloads on 2 workers (`mpirun -n 3 --oversubscribe`: rank 0 dispatches and sleeps):
  sqrt N      trivial tasks into a new store
  rerun N     the same command again: every task from the store
  add 10      10 new tasks against the store of N records
  status      `mpibatch status` on that store (wall time and peak memory)
GNU Parallel starts a process per task (about 400/s here, so 10^6 tasks would take 40 min), so
for trivial tasks its users reach for --pipe: the task list, one value a line, cut into blocks,
each piped through a Python filter; results to a file. It is compared on one command per task
by tools/bench/exec_vs_parallel.sh.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MPIBATCH = os.path.join(ROOT, "build", "tools", "mpibatch")
MPIRUN = ["mpirun", "-n", "3", "--oversubscribe"]
PY = "/usr/bin/python3"

JOBLIB = """
import math, sys
from joblib import Parallel, delayed
def f(x): return math.sqrt(x * x)
Parallel(n_jobs=2)(delayed(f)(float(i)) for i in range(int(sys.argv[1])))
"""
MPI4PY = """
import math, sys
from mpi4py.futures import MPIPoolExecutor
def f(x): return math.sqrt(x * x)
if __name__ == "__main__":
    with MPIPoolExecutor() as ex:
        list(ex.map(f, (float(i) for i in range(int(sys.argv[1]))), chunksize=1000))
"""
FILTER = """
import math, sys
def f(x): return math.sqrt(x * x)
sys.stdout.writelines("%r\\n" % f(float(line)) for line in sys.stdin)
"""
SERIAL = """
import math, sys
def f(x): return math.sqrt(x * x)
[f(float(i)) for i in range(int(sys.argv[1]))]
"""


def timed(cmd, env=None):
    """Wall seconds and the peak resident set (KiB) of the largest child, from the shell."""
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit("failed (%d): %s\n%s" % (p.returncode, " ".join(cmd), p.stderr))
    return wall, int(p.stderr.strip().splitlines()[-1])


def store_bytes(store):
    total = os.path.getsize(store)
    side = store + ".d"
    if os.path.isdir(side):
        total += sum(os.path.getsize(os.path.join(side, f)) for f in os.listdir(side))
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tasks", type=int, default=1000000)
    ap.add_argument("--store-dir", default=tempfile.gettempdir())
    a = ap.parse_args()
    n = a.tasks
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    work = tempfile.mkdtemp(dir=a.store_dir, prefix="mpibatch-bench-")
    store = os.path.join(work, "sqrt.h5")
    run = MPIRUN + [MPIBATCH, "run", "sqrt", "--store", store, "--progress", "none"]
    scripts = {}
    for name, text in (("joblib", JOBLIB), ("mpi4py", MPI4PY), ("filter", FILTER), ("serial", SERIAL)):
        scripts[name] = os.path.join(work, "peer_" + name + ".py")  # not joblib.py: it would shadow joblib
        with open(scripts[name], "w") as f:
            f.write(text)
    figures = {k: [] for k in ("new", "rerun", "add", "status", "status_kib", "joblib",
                               "mpi4py", "parallel", "serial", "bytes")}
    pipe = "seq 0 %d | parallel --pipe -j2 --block 1M %s %s > %s" % (
        n - 1, PY, scripts["filter"], os.path.join(work, "parallel.out"))
    try:
        for rep in range(a.reps):
            shutil.rmtree(store + ".d", ignore_errors=True)
            if os.path.exists(store):
                os.remove(store)
            figures["new"].append(timed(run + ["--grid", "x=0..%d" % (n - 1)], env)[0])
            figures["bytes"].append(store_bytes(store) / n)
            figures["rerun"].append(timed(run + ["--grid", "x=0..%d" % (n - 1)], env)[0])
            wall, kib = timed([MPIBATCH, "status", store], env)
            figures["status"].append(wall)
            figures["status_kib"].append(kib)
            figures["add"].append(timed(run + ["--grid", "x=%d..%d" % (n + 10 * rep, n + 10 * rep + 9)], env)[0])
            figures["joblib"].append(timed([PY, scripts["joblib"], str(n)], env)[0])
            figures["mpi4py"].append(timed(MPIRUN + [PY, "-m", "mpi4py.futures", scripts["mpi4py"], str(n)], env)[0])
            figures["parallel"].append(timed(["sh", "-c", pipe], env)[0])
            figures["serial"].append(timed([PY, scripts["serial"], str(n)], env)[0])
            print("rep %d: %s" % (rep + 1, {k: round(v[-1], 3) for k, v in figures.items()}), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in figures.items()}
    rng = {k: "%.2f-%.2f" % (min(v), max(v)) for k, v in figures.items()}
    cmd = "mpirun -n 3 --oversubscribe build/tools/mpibatch run sqrt --grid x=0..%d --store S --progress none" % (n - 1)
    print("Trivial tasks (sqrt), %d tasks, 2 workers, medians of %d runs taken alternately "
          "(`/usr/bin/python3 tools/bench/command_bench.py --tasks %d --reps %d`):\n" % (n, a.reps, n, a.reps))
    print("| what | wall clock (s) | range | tasks/s | mpibatch against it |")
    print("| --- | --- | --- | --- | --- |")
    def row(label, key, ratio=True):
        rate = "%.0f" % (n / med[key]) if key in ("new", "rerun", "joblib", "mpi4py", "parallel", "serial") else "-"
        r = "%.2fx" % (med[key] / med["new"]) if ratio else "-"
        print("| %s | %.2f | %s | %s | %s |" % (label, med[key], rng[key], rate, r))
    row("mpibatch: `%s`" % cmd, "new", False)
    row("mpibatch: the same command again (every task from the store)", "rerun", False)
    row("mpibatch: 10 new tasks against that store", "add", False)
    print("| `mpibatch status S` (peak memory %.0f MiB) | %.2f | %s | - | - |" %
          (med["status_kib"] / 1024, med["status"], rng["status"]))
    row("joblib `Parallel(n_jobs=2)`, default batching, results in memory", "joblib")
    row("mpi4py.futures, 2 workers, chunksize 1000, results in memory", "mpi4py")
    row("GNU Parallel `seq 0 %d \\| parallel --pipe -j2 --block 1M python3 filter.py > out` "
        "(a Python filter per 1 MB block of lines), results in a file" % (n - 1), "parallel")
    row("serial Python loop, results in memory", "serial")
    print("\nStore size: %.0f bytes a task (every file of the store over the number of tasks)." % med["bytes"])


if __name__ == "__main__":
    main()
