"""The python job end to end: a module's function run by `mpibatch run python` under real mpirun.

Usage: python_job_test.py MPIBATCH_BINARY   (run by ctest with Debian's python3)
"""
import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest

MPIBATCH = sys.argv.pop(1)
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")

MODULE = textwrap.dedent('''
    import math
    from typing import TypedDict

    class Result(TypedDict):
        y: float
        n: int
        even: bool
        label: str

    def simulate(a: int, b: float, tag: str, flip: bool) -> Result:
        y = math.sin(a) * b
        return {"y": y, "n": a * a, "even": (a % 2 == 0) != flip, "label": tag + str(a)}

    def trouble(a: int) -> float:
        with open("calls.txt", "a") as f:
            f.write("%d\\n" % a)
        if a == 3:
            raise ValueError("a=3 is bad")
        if a == 4:
            return "four"
        if a == 5:
            return None
        if a == 6:
            import numpy
            return numpy.float64(6.5)
        return a / 2

    def slow(a: int) -> int:
        import time
        time.sleep(0.05)
        return a

    def unannotated(a):
        return a

    def no_return(a: int):
        return {"x": a}

    def who(a: int) -> str:
        import os
        with open("/proc/self/comm") as f:
            comm = f.read().strip()
        with open("/proc/self/status") as f:
            ignored = [l.split()[1] for l in f if l.startswith("SigIgn:")][0]
        return "%s %d %s" % (comm, os.getpid(), ignored)
''')


def simulate(a, b, tag, flip):
    return {"y": math.sin(a) * b, "n": a * a, "even": (a % 2 == 0) != flip, "label": tag + str(a)}


class PythonJob(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mpibatch-python-")
        with open(os.path.join(self.dir, "sim.py"), "w") as f:
            f.write(MODULE)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def mpibatch(self, *args, np=None, check=None, env=ENV, program=MPIBATCH):
        cmd = [program, *args]
        if np is not None:
            cmd = ["mpirun", "-n", str(np), "--oversubscribe", *cmd]
        p = subprocess.run(cmd, env=env, cwd=self.dir, capture_output=True, text=True, timeout=300)
        if check is not None:
            self.assertEqual(p.returncode, check, "%s\nstdout: %s\nstderr: %s" % (cmd, p.stdout, p.stderr))
        return p

    def rows(self, store, run=None):
        args = ["export", store, "--format", "csv"] + (["--run", str(run)] if run else [])
        return list(csv.DictReader(io.StringIO(self.mpibatch(*args, check=0).stdout)))

    def status(self, store):
        return json.loads(self.mpibatch("status", store, "--json", check=0).stdout)

    def test_results_equal_a_plain_loop_at_1_to_4_ranks_and_a_rerun_computes_nothing(self):
        for np in (1, 2, 3, 4):
            store = "s%d.h5" % np
            args = ("run", "python", "--function", "sim:simulate", "--grid", "a=1..12", "--grid", "flip=false,true",
                    "--param", "b=0.5", "--param", "tag=t", "--store", store, "--progress", "none")
            self.mpibatch(*args, np=np, check=0)
            got = self.rows(store)
            self.assertEqual(len(got), 24)
            for r in got:
                want = simulate(int(r["a"]), float(r["b"]), r["tag"], r["flip"] == "true")
                self.assertEqual(r["status"], "ok")
                self.assertAlmostEqual(float(r["y"]), want["y"], places=12)
                self.assertEqual(int(r["n"]), want["n"])
                self.assertEqual(r["even"], "true" if want["even"] else "false")
                self.assertEqual(r["label"], want["label"])
                self.assertNotEqual(r["code_hash"], "")
            self.mpibatch(*args, np=np, check=0)
            s = self.status(store)
            self.assertEqual((s["total"], s["computed"], s["cached"]), (24, 0, 24))
            # A grid run records its spec; export lists its tasks again from it, in task order.
            listed = [(int(r["a"]), r["flip"]) for r in self.rows(store, run=2)]
            self.assertEqual(listed, [(a, f) for a in range(1, 13) for f in ("false", "true")])

    def test_ranks_run_in_debians_python3_one_process_each_unless_embedding_is_asked(self):
        embed = dict(ENV, MPIBATCH_EMBED_PYTHON="1")
        for np in (1, 2, 3, 4):
            python3 = os.path.basename(os.path.realpath(sys.executable))  # Debian's: ctest runs it
            for env, program in ((ENV, python3), (embed, "mpibatch")):
                store = "who%d%s.h5" % (np, program)
                self.mpibatch("run", "python", "--function", "sim:who", "--grid", "a=1..40", "--store", store,
                              "--progress", "none", np=np, check=0, env=env)
                seen = {r["value"] for r in self.rows(store)}
                self.assertEqual({s.split()[0] for s in seen}, {program}, (np, seen))
                self.assertLessEqual(len(seen), max(1, np - 1), ("one process a computing rank", np, seen))
                # python3 ignores SIGPIPE and SIGXFSZ; the embedded interpreter, and so the hosted one, do not.
                for s in seen:
                    mask = int(s.split()[2], 16)
                    self.assertEqual(mask & (1 << (13 - 1) | 1 << (25 - 1)), 0, (program, s))
        # The working directory is on sys.path as the job puts it, not as python3 would.
        self.mpibatch("run", "python", "--function", "sim:who", "--grid", "a=1..4", "--store", "safe.h5",
                      "--progress", "none", np=2, check=0, env=dict(ENV, PYTHONSAFEPATH="1"))

    def test_a_module_that_does_not_load_leaves_the_job_embedded_with_one_warning(self):
        here = os.path.dirname(os.path.realpath(MPIBATCH))
        modules = [f for f in os.listdir(here) if f.startswith("_mpibatch_python")]
        self.assertEqual(len(modules), 1, "the build puts the module next to the command")
        copy = os.path.join(self.dir, "bin")
        os.mkdir(copy)
        shutil.copy2(MPIBATCH, copy)
        with open(os.path.join(copy, modules[0]), "w") as f:
            f.write("not a library")
        p = self.mpibatch("run", "python", "--function", "sim:who", "--grid", "a=1..6", "--store", "w.h5",
                          "--progress", "none", np=3, check=0, program=os.path.join(copy, "mpibatch"))
        warnings = [l for l in p.stderr.splitlines() if "warning: cannot load" in l]
        self.assertEqual(len(warnings), 1, p.stderr)
        self.assertIn(modules[0], warnings[0])
        self.assertEqual({r["value"].split()[0] for r in self.rows("w.h5")}, {"mpibatch"})

    def test_results_are_typed_columns_h5py_reads(self):
        self.mpibatch("run", "python", "--function", "sim:simulate", "--grid", "a=1..3", "--param", "b=2",
                      "--param", "tag=x", "--param", "flip=false", "--store", "s.h5", "--progress", "none",
                      np=2, check=0)
        import h5py
        import numpy as np
        with h5py.File(os.path.join(self.dir, "s.h5"), "r") as f:
            g = f["jobs/sim.simulate/v1"]
            self.assertEqual(g["params/a"].dtype, np.int64)
            self.assertEqual(g["params/b"].dtype, np.float64)
            self.assertEqual(g["params/flip"].dtype, np.bool_)
            self.assertEqual(g["results/y"].dtype, np.float64)
            self.assertEqual(g["results/n"].dtype, np.int64)
            self.assertEqual(g["results/even"].dtype, np.bool_)
            self.assertEqual(sorted(g["results/label"].asstr()[:]), ["x1", "x2", "x3"])
            self.assertEqual(sorted(g["results/n"][:].tolist()), [1, 4, 9])
        # The DataFrame in two lines (docs/STORE.md), with the helper tools/mpibatch_h5.py.
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
        from mpibatch_h5 import dataframe
        df = dataframe(os.path.join(self.dir, "s.h5")).sort_values("a")
        self.assertEqual(df["a"].tolist(), [1, 2, 3])
        self.assertEqual(df["label"].tolist(), ["x1", "x2", "x3"])
        self.assertEqual(df["status"].tolist(), ["ok"] * 3)
        for a, y, n in zip(df["a"], df["y"], df["n"]):
            want = simulate(a, 2.0, "x", False)
            self.assertAlmostEqual(y, want["y"], places=12)
            self.assertEqual(n, want["n"])
        exported = {r["key"]: int(r["a"]) for r in self.rows("s.h5")}
        self.assertEqual({k: a for k, a in zip(df["key"], df["a"])}, exported, "keys as export writes them")

    def test_editing_the_module_reruns_its_tasks_and_job_version_forces_it(self):
        args = ["run", "python", "--function", "sim:simulate", "--grid", "a=1..5", "--param", "b=1",
                "--param", "tag=t", "--param", "flip=false", "--store", "s.h5", "--progress", "none"]
        self.mpibatch(*args, np=2, check=0)
        self.mpibatch(*args, np=2, check=0)
        self.assertEqual(self.status("s.h5")["computed"], 0)
        with open(os.path.join(self.dir, "sim.py"), "a") as f:
            f.write("\n# an edit\n")
        self.mpibatch(*args, np=2, check=0)
        self.assertEqual(self.status("s.h5")["computed"], 5)
        self.mpibatch(*args, np=2, check=0)
        self.assertEqual(self.status("s.h5")["computed"], 0)
        self.mpibatch(*args, "--job-version", "2", np=2, check=0)
        self.assertEqual(self.status("s.h5")["computed"], 5)
        self.mpibatch(*args, "--job-version", "2", np=2, check=0)
        self.assertEqual(self.status("s.h5")["computed"], 0)

    def test_an_exception_or_a_wrong_type_fails_only_its_task_and_retries_apply(self):
        for np in (1, 3):
            store = "t%d.h5" % np
            calls = os.path.join(self.dir, "calls.txt")
            if os.path.exists(calls):
                os.remove(calls)
            p = self.mpibatch("run", "python", "--function", "sim:trouble", "--grid", "a=1..7", "--retries", "1",
                              "--store", store, "--progress", "none", np=np, check=4)
            rows = {int(r["a"]): r for r in self.rows(store)}
            self.assertEqual(rows[3]["status"], "failed")
            self.assertIn("ValueError: a=3 is bad", rows[3]["error"])
            self.assertIn("sim.py", rows[3]["error"], "the traceback's last lines")
            self.assertEqual(rows[4]["status"], "failed")
            self.assertIn("returned a str for result 'value'", rows[4]["error"])
            self.assertEqual(rows[5]["status"], "ok", "None is a result: the column's stand-in")
            self.assertEqual(rows[5]["value"], "")
            self.assertEqual(float(rows[6]["value"]), 6.5, "numpy scalars are numbers")
            for a in (1, 2, 7):
                self.assertEqual(float(rows[a]["value"]), a / 2)
            with open(calls) as f:
                counts = [int(line) for line in f]
            self.assertEqual(counts.count(3), 2, "a retry, then failed")
            self.assertEqual(counts.count(1), 1)
            self.assertIn("2 failed", p.stderr)

    def test_bad_functions_and_parameters_are_refused_before_any_work(self):
        cases = [
            (["--function", "sim:unannotated", "--grid", "a=1..3"], "parameter 'a' needs an annotation"),
            (["--function", "sim:no_return", "--grid", "a=1..3"], "say what it returns"),
            (["--function", "sim:trouble", "--grid", "a=0.5..2"], "--grid a=0.5..2"),
            (["--function", "sim:trouble", "--grid", "b=1..2"], "b"),
            (["--function", "sim:simulate", "--grid", "a=1..2"], "b"),
            (["--function", "nosuch:f", "--grid", "a=1..2"], "No module named 'nosuch'"),
            (["--function", "sim:absent", "--grid", "a=1..2"], "absent"),
            (["--function", "sim", "--grid", "a=1..2"], "MODULE:FUNCTION"),
            (["--grid", "a=1..2"], "--function"),
        ]
        for args, why in cases:
            for np in (1, 2):
                p = self.mpibatch("run", "python", *args, "--store", "bad.h5", np=np, check=2)
                lines = [l for l in p.stderr.splitlines() if l.startswith("mpibatch run")]
                self.assertTrue(len(lines) == 1 and why in lines[0], ("said once", args, p.stderr))
                self.assertFalse(os.path.exists(os.path.join(self.dir, "bad.h5")), args)
                self.assertFalse(os.path.exists(os.path.join(self.dir, "calls.txt")), "no task ran")

    def test_a_time_limit_stops_it_with_3_and_the_same_command_resumes(self):
        for np in (1, 2):
            store = "slow%d.h5" % np
            args = ("run", "python", "--function", "sim:slow", "--grid", "a=1..120", "--store", store,
                    "--progress", "none")
            p = self.mpibatch(*args, "--time-limit", "3", "--grace", "1", np=np)
            self.assertEqual(p.returncode, 3, p.stderr)
            first = self.status(store)
            self.assertEqual(first["state"], "stopped")
            self.assertLess(first["computed"], 120)
            self.mpibatch(*args, np=np, check=0)
            s = self.status(store)
            self.assertEqual((s["done"], s["computed"] + s["cached"]), (120, 120))
            self.assertEqual(s["cached"], first["computed"], "each task once")
            self.assertEqual(sorted(int(r["value"]) for r in self.rows(store)), list(range(1, 121)))

    def test_submit_writes_a_batch_script_that_runs_the_function(self):
        p = self.mpibatch("submit", "python", "--function", "sim:simulate", "--grid", "a=1..4", "--param", "b=1",
                          "--param", "tag=t", "--param", "flip=false", "--store", "s.h5", "--ntasks", "4",
                          "--time", "10:00", "--dry-run", check=0)
        self.assertIn("'run' 'python' '--function' 'sim:simulate'", p.stdout)
        self.assertEqual(subprocess.run(["bash", "-n"], input=p.stdout, text=True).returncode, 0)

    def test_result_keys_from_the_command_line(self):
        self.mpibatch("run", "python", "--function", "sim:no_return", "--result", "x:int", "--grid", "a=1..4",
                      "--store", "s.h5", "--progress", "none", np=2, check=0)
        self.assertEqual(sorted(int(r["x"]) for r in self.rows("s.h5")), [1, 2, 3, 4])


if __name__ == "__main__":
    unittest.main()
