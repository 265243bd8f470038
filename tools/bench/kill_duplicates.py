#!/usr/bin/python3
"""Duplicates after a kill: how many finished tasks run again when the whole job is killed.

Each task is an exec command that appends its number to a log (its side effect) and sleeps;
the run is killed with SIGKILL (the mpirun process group) at a random moment, then the same
command runs again to the end. Duplicates = lines in the log - tasks. GNU Parallel's
`--joblog --resume` reruns at most the jobs in flight (here 2).

  /usr/bin/python3 tools/bench/kill_duplicates.py [--kills 20] [--seconds 0.02] [--ranks 3]
"""
import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MPIBATCH = os.path.join(ROOT, "build", "tools", "mpibatch")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=0.02)
    ap.add_argument("--tasks", type=int, default=400)
    ap.add_argument("--ranks", type=int, default=3)
    a = ap.parse_args()
    rng = random.Random(20261205)
    dups = []
    with tempfile.TemporaryDirectory() as d:
        for k in range(a.kills):
            store, log = os.path.join(d, "s%d.h5" % k), os.path.join(d, "log%d" % k)
            cmd = ["mpirun", "-q", "-n", str(a.ranks), "--oversubscribe", MPIBATCH, "run", "exec", "--shell",
                   "--cmd", "echo {i} >> %s; sleep %g" % (log, a.seconds), "--grid", "i=1..%d" % a.tasks,
                   "--store", store, "--progress", "none"]
            p = subprocess.Popen(cmd, env=ENV, start_new_session=True, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            # A moment within the run (about tasks * seconds / 2 of work on 2 workers).
            time.sleep(0.5 + rng.random() * a.tasks * a.seconds / (a.ranks - 1) * 0.8)
            # The whole job at once: mpirun and every rank (Open MPI gives each rank its own
            # process group, so killing mpirun's group leaves them running for a second).
            pids = subprocess.run(["pgrep", "-f", store], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            p.wait()
            r = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit("rerun failed: %s" % r.stderr)
            lines = open(log).read().split()
            missing = set(range(1, a.tasks + 1)) - set(map(int, lines))
            if missing:
                sys.exit("tasks never ran: %s" % sorted(missing)[:10])
            dups.append(len(lines) - a.tasks)
            print("kill %d: %d duplicates" % (k + 1, dups[-1]), flush=True)
    print("| kills | task | duplicates a kill: mean | median | max |")
    print("| --- | --- | --- | --- | --- |")
    print("| %d | `sleep %g`, %d workers | %.1f | %g | %d |" % (
        a.kills, a.seconds, a.ranks - 1, statistics.mean(dups), statistics.median(dups), max(dups)))


if __name__ == "__main__":
    main()
