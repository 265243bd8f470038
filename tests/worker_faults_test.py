"""Workers in trouble (issue 17): tasks that crash their worker are recorded, run
alone and quarantined; a batch that stalls is named.

A python function segfaults on x=3 and aborts on x=5; x=7 is sent SIGSEGV once
by another process (a kill from outside, which must not count). The same
command is rerun until it finishes, at 1 to 4 ranks.

Usage: worker_faults_test.py MPIBATCH_BINARY   (run by ctest with Debian's python3)
"""
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

MPIBATCH = sys.argv.pop(1)
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           PYTHONDONTWRITEBYTECODE="1")

MODULE = textwrap.dedent('''
    import ctypes, os, signal, subprocess

    def f(x: int) -> int:
        with open("calls.txt", "a") as log:
            log.write("%d\\n" % x)
        if x == 3:
            ctypes.string_at(0)              # SIGSEGV
        if x == 5:
            os.abort()                       # SIGABRT
        if x == 7 and not os.path.exists("killed-7"):
            open("killed-7", "w").close()
            subprocess.run(["kill", "-SEGV", str(os.getpid())])  # from outside
        return x * x

    def forks(x: int) -> int:
        if x == 2:  # a child it forks segfaults: not the worker's crash
            pid = os.fork()
            if pid == 0:
                ctypes.string_at(0)
            os.waitpid(pid, 0)
        return x

    def slow(x: int) -> int:
        if x == 2:
            import time
            time.sleep(60)
        return x

    def swap(x: int) -> int:
        if x == 1:  # the test replaces the command's file meanwhile
            import time
            open("waiting", "w").close()
            while not os.path.exists("replaced"):
                time.sleep(0.05)
        if x == 2:
            ctypes.string_at(0)
        return x
''')

MPIRUN = ["mpirun", "--oversubscribe"]


class Poison(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mpibatch-poison-")
        with open(os.path.join(self.dir, "poison.py"), "w") as f:
            f.write(MODULE)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def mpibatch(self, *args):
        return subprocess.run([MPIBATCH, *args], cwd=self.dir, env=ENV, capture_output=True,
                              text=True, timeout=120)

    def run_job(self, ranks, *extra, grid="x=1..12"):
        cmd = MPIRUN + ["-n", str(ranks), MPIBATCH, "run", "python", "--function", "poison:f",
                        "--grid", grid, "--store", "s.h5", "--progress", "none", *extra]
        return subprocess.run(cmd, cwd=self.dir, env=ENV, capture_output=True, text=True,
                              timeout=180)

    def records(self):
        folder = os.path.join(self.dir, "s.h5.d", "crashes")
        return sorted(os.listdir(folder)) if os.path.isdir(folder) else []

    def calls(self):
        with open(os.path.join(self.dir, "calls.txt")) as f:
            return [int(line) for line in f]

    def rerun_until_finished(self, ranks):
        statuses = []
        for _ in range(8):
            p = self.run_job(ranks)
            statuses.append(p.returncode)
            if p.returncode in (0, 4):
                return statuses, p
        self.fail("never finished: statuses %s\n%s" % (statuses, p.stderr[-3000:]))

    def check_quarantined(self, ranks):
        statuses, last = self.rerun_until_finished(ranks)
        # At most two crashes a poison task, one for the kill, one run that finishes.
        self.assertLessEqual(len(statuses), 6, statuses)
        self.assertEqual(statuses[-1], 4, last.stderr[-2000:])
        for s in statuses[:-1]:
            self.assertNotIn(s, (0, 1, 2, 3, 4), statuses)  # a crash ends the job
        rows = list(csv.DictReader(io.StringIO(self.mpibatch("export", "s.h5").stdout)))
        by_x = {int(r["x"]): r for r in rows}
        self.assertEqual(sorted(by_x), list(range(1, 13)))
        for x, r in by_x.items():
            if x in (3, 5):
                self.assertEqual(r["status"], "crashed", r)
                self.assertEqual(r["value"], "", r)
            else:
                self.assertEqual((r["status"], int(r["value"])), ("ok", x * x), r)
        self.assertIn("crashed its worker: signal 11 (SIGSEGV), in 2 runs", by_x[3]["error"])
        self.assertIn("crashed its worker: signal 6 (SIGABRT), in 2 runs", by_x[5]["error"])
        failed = self.mpibatch("failed", "--json", "s.h5")
        self.assertEqual(failed.returncode, 4)
        lines = [json.loads(l) for l in failed.stdout.splitlines()]
        self.assertEqual(sorted((l["params"]["x"], l["crashed"]) for l in lines),
                         [(3, True), (5, True)])
        self.assertIn("2 crashed their worker", self.mpibatch("failed", "s.h5").stderr)
        # Each poison task ran exactly twice: never again once quarantined.
        calls = self.calls()
        self.assertEqual(calls.count(3), 2, calls)
        self.assertEqual(calls.count(5), 2, calls)
        # The kill from outside left no record: four records, two per poison task.
        self.assertEqual(len(self.records()), 4, self.records())
        self.assertTrue(os.path.exists(os.path.join(self.dir, "killed-7")))
        # A rerun computes nothing, runs neither again and still says 4.
        again = self.run_job(ranks)
        self.assertEqual(again.returncode, 4, again.stderr[-2000:])
        self.assertEqual(self.calls(), calls)
        self.assertEqual(self.mpibatch("verify", "s.h5").returncode, 0)
        # Quarantined tasks are no failure of this run to --halt: new tasks all run.
        more = self.run_job(ranks, "--halt", "fail=1", grid="x=1..40")
        self.assertEqual(more.returncode, 4, more.stderr[-2000:])
        status = json.loads(self.mpibatch("status", "s.h5", "--json").stdout)
        self.assertEqual((status["state"], status["done"]), ("finished", 40), status)

    def test_poison_tasks_are_quarantined_at_1_to_4_ranks(self):
        for ranks in (1, 2, 3, 4):
            with self.subTest(ranks=ranks):
                self.tearDown()
                self.setUp()
                self.check_quarantined(ranks)

    def test_clear_failed_forgets_the_crashes_and_retry_crashed_runs_them(self):
        self.check_quarantined(2)
        # --retry-crashed runs x=3 and x=5 again: the job crashes, a third record.
        p = self.run_job(2, "--retry-crashed")
        self.assertNotIn(p.returncode, (0, 4))
        self.assertGreater(len(self.records()), 4)
        # clear --failed drops their results and every record naming them.
        c = self.mpibatch("clear", "s.h5", "--failed", "--yes")
        self.assertEqual(c.returncode, 0, c.stderr)
        self.assertEqual(self.records(), [])
        before = len(self.calls())
        p = self.run_job(2)  # suspects again from scratch: one crash, no quarantine yet
        self.assertNotIn(p.returncode, (0, 4))
        self.assertGreater(len(self.calls()), before)
        self.assertGreaterEqual(len(self.records()), 1)

    def test_isolate_fails_crashing_tasks_alone_in_one_run(self):
        for ranks in (1, 2, 3, 4):
            with self.subTest(ranks=ranks):
                self.tearDown()
                self.setUp()
                open(os.path.join(self.dir, "killed-7"), "w").close()  # no outside kill here
                p = self.run_job(ranks, "--isolate")
                self.assertEqual(p.returncode, 4, p.stderr[-2000:])
                rows = list(csv.DictReader(io.StringIO(self.mpibatch("export", "s.h5").stdout)))
                by_x = {int(r["x"]): r for r in rows}
                self.assertEqual(sorted(by_x), list(range(1, 13)))
                for x, r in by_x.items():
                    if x not in (3, 5):
                        self.assertEqual((r["status"], int(r["value"])), ("ok", x * x), r)
                self.assertEqual((by_x[3]["status"], by_x[3]["error"]),
                                 ("crashed", "crashed its worker: signal 11 (SIGSEGV)"))
                self.assertEqual((by_x[5]["status"], by_x[5]["error"]),
                                 ("crashed", "crashed its worker: signal 6 (SIGABRT)"))
                self.assertEqual(self.records(), [])  # no worker crashed: nothing recorded
                # Run again, as failed tasks are: they crash alone again, the rest is served.
                before = self.calls()
                p = self.run_job(ranks, "--isolate")
                self.assertEqual(p.returncode, 4, p.stderr[-2000:])
                new = self.calls()[len(before):]
                self.assertEqual(sorted(set(new)), [3, 5], new)

    def test_isolate_restarts_the_binary_it_started_with_though_its_file_was_replaced(self):
        here = os.path.dirname(os.path.realpath(MPIBATCH))
        bin_dir = os.path.join(self.dir, "bin")
        os.mkdir(bin_dir)
        for name in os.listdir(here):
            if name == "mpibatch" or name.startswith("_mpibatch_python"):
                shutil.copy2(os.path.join(here, name), bin_dir)
        program = os.path.join(bin_dir, "mpibatch")
        job = subprocess.Popen(MPIRUN + ["-n", "2", program, "run", "python", "--function", "poison:swap",
                                         "--grid", "x=1..4", "--batch", "1", "--isolate", "--store", "w.h5",
                                         "--progress", "none"],
                               cwd=self.dir, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            for _ in range(1200):
                if os.path.exists(os.path.join(self.dir, "waiting")) or job.poll() is not None:
                    break
                time.sleep(0.05)
            new = os.path.join(bin_dir, "new")
            with open(new, "w") as f:
                f.write("#!/bin/sh\nexit 99\n")
            os.chmod(new, 0o755)
            os.replace(new, program)  # a rebuild or reinstall during the run
            open(os.path.join(self.dir, "replaced"), "w").close()
            _, err = job.communicate(timeout=120)
        finally:
            job.kill()
        self.assertEqual(job.returncode, 4, err[-2000:])
        rows = list(csv.DictReader(io.StringIO(self.mpibatch("export", "w.h5").stdout)))
        by_x = {int(r["x"]): (r["status"], r["error"]) for r in rows}
        self.assertEqual(by_x, {1: ("ok", ""), 2: ("crashed", "crashed its worker: signal 11 (SIGSEGV)"),
                                3: ("ok", ""), 4: ("ok", "")})

    def test_a_forked_child_that_crashes_is_not_recorded(self):
        for ranks in (1, 2):
            cmd = MPIRUN + ["-n", str(ranks), MPIBATCH, "run", "python", "--function",
                            "poison:forks", "--grid", "x=1..4", "--store", "f%d.h5" % ranks,
                            "--progress", "none"]
            p = subprocess.run(cmd, cwd=self.dir, env=ENV, capture_output=True, text=True,
                               timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr[-2000:])
            folder = os.path.join(self.dir, "f%d.h5.d" % ranks, "crashes")
            self.assertEqual(os.listdir(folder), [])

    def test_isolate_task_timeout_ends_a_task_that_hangs(self):
        base = MPIRUN + ["-n", "3", MPIBATCH, "run", "python", "--function", "poison:slow", "--grid",
                         "x=1..6", "--store", "t.h5", "--progress", "none", "--task-timeout", "1"]
        p = subprocess.run(base + ["--isolate"], cwd=self.dir, env=ENV, capture_output=True,
                           text=True, timeout=50)
        self.assertEqual(p.returncode, 4, p.stderr[-2000:])
        rows = list(csv.DictReader(io.StringIO(self.mpibatch("export", "t.h5").stdout)))
        by_x = {int(r["x"]): r for r in rows}
        self.assertEqual(by_x[2]["status"], "failed")
        self.assertIn("timed out after 1 s (--task-timeout)", by_x[2]["error"])
        self.assertEqual([int(by_x[x]["value"]) for x in (1, 3, 4, 5, 6)], [1, 3, 4, 5, 6])
        # Without --isolate a python task cannot be ended: the option is refused.
        p = subprocess.run(base, cwd=self.dir, env=ENV, capture_output=True, text=True,
                           timeout=50)
        self.assertEqual(p.returncode, 2, p.stderr[-2000:])
        self.assertIn("--task-timeout is an option of exec", p.stderr)

    def test_a_worker_that_cannot_reach_the_store_folder_is_named(self):
        # The workers in a mount namespace of their own, with an empty file
        # system over the store's folder: what a disk only rank 0's node has
        # looks like to them. Then the same with a folder of that name there.
        if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
            self.skipTest("unshare -m is not allowed here")
        store = os.path.join(self.dir, "s.h5")
        base = [MPIBATCH, "run", "exec", "--cmd", "echo {i}", "--grid", "i=1..4", "--store",
                store, "--progress", "none"]
        for setup, why in (("", "No such file"),
                           ("mkdir -p s.h5.d/crashes && ", "another folder here than on rank 0")):
            hidden = ["unshare", "-m", "sh", "-c",
                      'mount -t tmpfs tmpfs "$0" && cd "$0" && %sexec "$@"' % setup, self.dir]
            cmd = MPIRUN + ["-n", "1", *base, ":", "-n", "2", *hidden, *base]
            p = subprocess.run(cmd, cwd=self.dir, env=ENV, capture_output=True, text=True,
                               timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr[-2000:])
            warning = [l for l in p.stderr.splitlines() if "cannot reach" in l]
            self.assertEqual(len(warning), 1, p.stderr)
            self.assertRegex(warning[0], r"rank [12] on \S+ and 1 more cannot reach .*s\.h5\.d")
            self.assertIn(why, warning[0])
        # Workers that see it say nothing, and leave no empty record behind.
        p = self.run_job(3, grid="x=8..11")
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        self.assertNotIn("cannot reach", p.stderr)
        self.assertEqual(self.records(), [])


class Stall(unittest.TestCase):
    def test_a_batch_far_slower_than_expected_is_named_once(self):
        d = tempfile.mkdtemp(prefix="mpibatch-stall-")
        self.addCleanup(shutil.rmtree, d, True)
        # Tasks of 50 ms but one of 6 s (the floor of a minute lowered to 2 s).
        env = dict(ENV, MPIBATCH_STALL_SECONDS="2")
        for ranks, mode in ((2, "log"), (3, "json"), (4, "bar")):
            store = os.path.join(d, "s%d.h5" % ranks)
            cmd = MPIRUN + ["-n", str(ranks), "-x", "MPIBATCH_STALL_SECONDS", MPIBATCH, "run",
                            "exec", "--shell", "--cmd",
                            "if [ {i} = 20 ]; then sleep 6; else sleep 0.05; fi", "--grid",
                            "i=1..40", "--store", store, "--progress", mode]
            p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr[-2000:])
            lines = [l for l in p.stderr.splitlines() if "has run a batch" in l]
            self.assertEqual(len(lines), 1, p.stderr[-3000:])
            self.assertRegex(lines[0], r"rank [1-3] on \S+ has run a batch of 1 task for "
                             r"[0-9.]+ s, [0-9]+ times the [0-9.e-]+ s expected")
            if mode == "json":
                self.assertIn("has run a batch", json.loads(lines[0])["warning"])
            elif mode == "log":
                self.assertRegex(lines[0], r"^\d{4}-\d\d-\d\dT\S+ mpibatch: warning: ")
        # Tasks that are all slow, evenly, warn of nothing.
        p = subprocess.run(MPIRUN + ["-n", "2", "-x", "MPIBATCH_STALL_SECONDS", MPIBATCH, "run",
                                     "exec", "--shell", "--cmd", "sleep 0.5; : {i}", "--grid", "i=1..8", "--store",
                                     os.path.join(d, "even.h5"), "--progress", "log"],
                           env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr[-2000:])
        self.assertNotIn("warning", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
