#!/usr/bin/python3
"""Python functions as jobs: `mpibatch run python` against joblib and a serial loop, side by side.

Each workload runs alternately with its peers, REPS times; prints Markdown tables of medians
(wall clock from the shell: mpirun's start-up, the interpreters' start and the store included).
Peers: joblib `Parallel(n_jobs=2)` (loky, default batching) and a plain serial loop, both with
Debian's python3; install them with `tools/setup.sh --bench`.

  /usr/bin/python3 tools/bench/python_bench.py [--reps 1] [--pi-tasks 1000] [--calls 1000000]

Workloads on 2 workers (`mpirun -n 3 --oversubscribe`: rank 0 dispatches and sleeps):
  pi        the seed tutorial's Leibniz series for pi, order 6, PI_TASKS tasks (a row each)
  trivial   CALLS calls of f(x) = sqrt(x * x)
Efficiency at 2 workers: the serial loop's time over twice mpibatch's. The ranks run in Debian's
python3 (jobs/python_host.hpp); "embedded" is the same command with MPIBATCH_EMBED_PYTHON=1 (the
interpreter the command links), on a store of its own.
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

MODULE = """
import math

def pi(order: int, row: int) -> float:
    s = 0.0
    for k in range(10 ** order):
        s += (4.0 if k % 2 == 0 else -4.0) / (2 * k + 1)
    return s

def f(x: float) -> float:
    return math.sqrt(x * x)
"""
JOBLIB_PI = """
import sys
from joblib import Parallel, delayed
from work import pi
Parallel(n_jobs=2)(delayed(pi)(6, r) for r in range(int(sys.argv[1])))
"""
JOBLIB_TRIVIAL = """
import sys
from joblib import Parallel, delayed
from work import f
Parallel(n_jobs=2)(delayed(f)(float(i)) for i in range(int(sys.argv[1])))
"""
SERIAL_PI = """
import sys
from work import pi
[pi(6, r) for r in range(int(sys.argv[1]))]
"""
SERIAL_TRIVIAL = """
import sys
from work import f
[f(float(i)) for i in range(int(sys.argv[1]))]
"""


def timed(cmd, env, cwd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit("failed (%d): %s\n%s" % (p.returncode, " ".join(cmd), p.stderr))
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--pi-tasks", type=int, default=1000)
    ap.add_argument("--calls", type=int, default=1000000)
    a = ap.parse_args()
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    work = tempfile.mkdtemp(prefix="mpibatch-pybench-")
    for name, text in (("work.py", MODULE), ("joblib_pi.py", JOBLIB_PI), ("joblib_trivial.py", JOBLIB_TRIVIAL),
                       ("serial_pi.py", SERIAL_PI), ("serial_trivial.py", SERIAL_TRIVIAL)):
        with open(os.path.join(work, name), "w") as f:
            f.write(text)
    runs = {
        "pi": MPIRUN + [MPIBATCH, "run", "python", "--function", "work:pi", "--grid", "row=0..%d" % (a.pi_tasks - 1),
                        "--param", "order=6", "--store", "pi.h5", "--progress", "none"],
        "trivial": MPIRUN + [MPIBATCH, "run", "python", "--function", "work:f", "--grid",
                             "x=0..%d" % (a.calls - 1), "--store", "f.h5", "--progress", "none"],
    }
    peers = {"pi": (a.pi_tasks, "joblib_pi.py", "serial_pi.py"),
             "trivial": (a.calls, "joblib_trivial.py", "serial_trivial.py")}
    figures = {w: {"mpibatch": [], "rerun": [], "embedded": [], "joblib": [], "serial": []} for w in runs}
    embedded_env = dict(env, MPIBATCH_EMBED_PYTHON="1")
    try:
        for rep in range(a.reps):
            for w, cmd in runs.items():
                store = os.path.join(work, cmd[cmd.index("--store") + 1])
                embedded_cmd = cmd[:]
                embedded_cmd[cmd.index("--store") + 1] = "embedded-" + os.path.basename(store)
                for s in (store, os.path.join(work, "embedded-" + os.path.basename(store))):
                    shutil.rmtree(s + ".d", ignore_errors=True)
                    if os.path.exists(s):
                        os.remove(s)
                n, joblib_script, serial_script = peers[w]
                figures[w]["mpibatch"].append(timed(cmd, env, work))
                figures[w]["rerun"].append(timed(cmd, env, work))
                figures[w]["embedded"].append(timed(embedded_cmd, embedded_env, work))
                figures[w]["joblib"].append(timed([PY, joblib_script, str(n)], env, work))
                figures[w]["serial"].append(timed([PY, serial_script, str(n)], env, work))
                print("rep %d %s: %s" % (rep + 1, w, {k: round(v[-1], 3) for k, v in figures[w].items()}),
                      file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for w, cmd in runs.items():
        n = peers[w][0]
        med = {k: statistics.median(v) for k, v in figures[w].items()}
        rng = {k: "%.2f-%.2f" % (min(v), max(v)) for k, v in figures[w].items()}
        shown = " ".join(c if c != MPIBATCH else "build/tools/mpibatch" for c in cmd)
        print("\n%s: %d %s, 2 workers, medians of %d runs taken alternately "
              "(`/usr/bin/python3 tools/bench/python_bench.py --reps %d --pi-tasks %d --calls %d`):\n"
              % (w, n, "tasks of order 6" if w == "pi" else "calls", a.reps, a.reps, a.pi_tasks, a.calls))
        print("| what | wall clock (s) | range | tasks/s | mpibatch against it |")
        print("| --- | --- | --- | --- | --- |")
        rows = [("mpibatch: `%s`" % shown, "mpibatch"),
                ("mpibatch: the same command again (every task from the store)", "rerun"),
                ("mpibatch, the interpreter it embeds (`MPIBATCH_EMBED_PYTHON=1`), a new store", "embedded"),
                ("joblib `Parallel(n_jobs=2)`, default batching, results in memory", "joblib"),
                ("serial loop in one Python process", "serial")]
        for label, k in rows:
            ratio = "-" if k in ("mpibatch", "rerun", "embedded") else "%.2fx" % (med[k] / med["mpibatch"])
            print("| %s | %.2f | %s | %.0f | %s |" % (label, med[k], rng[k], n / med[k], ratio))
        print("\nEfficiency at 2 workers (serial / (2 x mpibatch)): %.3f; embedded: %.3f; joblib: %.3f" %
              tuple(med["serial"] / (2 * med[k]) for k in ("mpibatch", "embedded", "joblib")))


if __name__ == "__main__":
    main()
