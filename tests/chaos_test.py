#!/usr/bin/python3
"""Chaos: kill -9 of the whole job, of rank 0 only or of one worker, then the same command.

Each task is an exec command that appends its number to a log (its side effect) and sleeps.
A trial starts the run at 2, 3 or 4 ranks, kills at a random moment, and then asserts:
  - `verify` passes on what the kill left;
  - the rerun (the same command) exits 0 and every task ends in the store and in the log;
  - nothing committed before the kill runs again (exactly: no task `export` showed as done
    before the rerun appears in the log lines the rerun added);
  - `verify` passes again.
Duplicates (finished tasks run again because they were not yet committed) are counted per kill
mode and printed as a table: a figure for docs/RELIABILITY.md, not an assertion.

  chaos_test.py MPIBATCH [--trials N] [--seed S]
Trials default to $MPIBATCH_CHAOS_TRIALS, else 300 (the long form); CI sets a short form.
"""
import argparse
import collections
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
MODES = ("job", "master", "worker")
TASKS = 300
SLEEP = 0.02
HANG = 120  # seconds: a run or a verb that takes longer is a hang


def rank_pids(store):
    """{rank: pid} of the live ranks of the run on store (mpirun itself has no rank)."""
    ranks = {}
    out = subprocess.run(["pgrep", "-f", store], capture_output=True, text=True).stdout.split()
    for pid in map(int, out):
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
        except OSError:
            continue
        if b"OMPI_COMM_WORLD_RANK" in env:
            ranks[int(env[b"OMPI_COMM_WORLD_RANK"])] = pid
    return ranks


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_gone(store):
    deadline = time.time() + HANG
    while subprocess.run(["pgrep", "-f", store], capture_output=True).returncode == 0:
        if time.time() > deadline:
            sys.exit("FAIL: processes of %s still alive %d s after the kill" % (store, HANG))
        time.sleep(0.05)


def verb(mpibatch, *args):
    r = subprocess.run([mpibatch, *args], capture_output=True, text=True, timeout=HANG)
    if r.returncode < 0:
        sys.exit("FAIL: `%s` died of signal %d" % (" ".join(args), -r.returncode))
    return r


def done_tasks(mpibatch, store):
    """The i of every task the store holds as done (empty if the kill came before the store)."""
    if not os.path.exists(store):
        return set()
    r = verb(mpibatch, "export", store, "--format", "jsonl")
    if r.returncode != 0:
        if "no runs" in r.stderr:
            return set()
        sys.exit("FAIL: export after the kill: %s" % r.stderr.strip())
    return {int(row["i"]) for row in map(json.loads, r.stdout.splitlines()) if row["status"] == "ok"}


def log_counts(path):
    if not os.path.exists(path):
        return collections.Counter()
    with open(path) as f:
        return collections.Counter(int(v) for v in f.read().split())


def trial(mpibatch, d, k, ranks, mode, rng):
    store, log = os.path.join(d, "s%d.h5" % k), os.path.join(d, "log%d" % k)
    cmd = ["mpirun", "-q", "-n", str(ranks), "--oversubscribe", mpibatch, "run", "exec", "--shell",
           "--cmd", "echo {i} >> %s; sleep %g" % (log, SLEEP), "--grid", "i=1..%d" % TASKS,
           "--store", store, "--progress", "none"]
    p = subprocess.Popen(cmd, env=ENV, start_new_session=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    # From start-up (about 0.4 s) to near the end of the run's work.
    time.sleep(0.2 + rng.random() * (0.4 + TASKS * SLEEP / (ranks - 1) * 0.9))
    live = rank_pids(store)
    if mode == "job":
        # Open MPI gives each rank its own process group: kill mpirun's and every rank.
        os.killpg(p.pid, signal.SIGKILL)
        for pid in live.values():
            kill(pid)
    elif mode == "master":
        if 0 in live:
            kill(live[0])
    else:
        workers = sorted(r for r in live if r > 0)
        if workers:
            kill(live[rng.choice(workers)])
    try:
        p.wait(timeout=HANG)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        sys.exit("FAIL: trial %d (%s, %d ranks): mpirun hung after the kill" % (k, mode, ranks))
    wait_gone(store)

    if os.path.exists(store):
        r = verb(mpibatch, "verify", store)
        if r.returncode != 0:
            sys.exit("FAIL: trial %d (%s, %d ranks): verify after the kill: %s%s" % (
                k, mode, ranks, r.stdout, r.stderr))
    committed = done_tasks(mpibatch, store)
    before = log_counts(log)

    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=HANG)
    if r.returncode != 0:
        sys.exit("FAIL: trial %d (%s, %d ranks): rerun exit %d: %s" % (
            k, mode, ranks, r.returncode, r.stderr.strip()))
    after = log_counts(log)
    rerun = after - before
    again = sorted(committed & set(rerun))
    if again:
        sys.exit("FAIL: trial %d (%s, %d ranks): committed tasks ran again: %s" % (
            k, mode, ranks, again[:10]))
    missing = sorted(set(range(1, TASKS + 1)) - set(after))
    if missing:
        sys.exit("FAIL: trial %d: tasks never ran: %s" % (k, missing[:10]))
    if len(done_tasks(mpibatch, store)) != TASKS:
        sys.exit("FAIL: trial %d: the store does not hold every task after the rerun" % k)
    r = verb(mpibatch, "verify", store)
    if r.returncode != 0:
        sys.exit("FAIL: trial %d: verify after the rerun: %s" % (k, r.stdout + r.stderr))
    os.remove(log)
    return sum(after.values()) - TASKS, len(committed)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mpibatch")
    ap.add_argument("--trials", type=int, default=int(os.environ.get("MPIBATCH_CHAOS_TRIALS", "300")))
    ap.add_argument("--seed", type=int, default=int(time.time()))
    a = ap.parse_args()
    print("chaos: %d trials, seed %d" % (a.trials, a.seed), flush=True)
    rng = random.Random(a.seed)
    dups = collections.defaultdict(list)
    started = time.time()
    with tempfile.TemporaryDirectory() as d:
        for k in range(a.trials):
            mode, ranks = MODES[k % 3], 2 + (k // 3) % 3
            n, committed = trial(a.mpibatch, d, k, ranks, mode, rng)
            dups[mode].append(n)
            print("trial %d: kill of %s at %d ranks: %d committed before, %d duplicates" % (
                k + 1, mode, ranks, committed, n), flush=True)
    print("\n%d kills in %.0f s, verify passed after each, no committed task ran again" % (
        a.trials, time.time() - started))
    print("| killed | kills | duplicates a kill: mean | median | max |")
    print("| --- | --- | --- | --- | --- |")
    for mode in MODES:
        if dups[mode]:
            v = dups[mode]
            print("| %s | %d | %.1f | %g | %d |" % (
                {"job": "the whole job", "master": "rank 0 only", "worker": "one worker"}[mode],
                len(v), statistics.mean(v), statistics.median(v), max(v)))


if __name__ == "__main__":
    main()
