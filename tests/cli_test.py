"""The mpibatch command, end to end: real mpirun, real files, real exit statuses.

Usage: cli_test.py MPIBATCH_BINARY   (run by ctest; needs mpirun on PATH)
"""
import csv
import io
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tempfile
import unittest

MPIBATCH = sys.argv.pop(1)
IMAGES = sys.argv.pop(1)  # tests/images.cpp: makes and measures test images
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def leibniz(order):
    return sum((4.0 if k % 2 == 0 else -4.0) / (2 * k + 1) for k in range(10 ** order))


class Cli(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mpibatch-cli-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def mpibatch(self, *args, np=None, check=None):
        cmd = [MPIBATCH, *args]
        if np is not None:
            cmd = ["mpirun", "-n", str(np), "--oversubscribe", *cmd]
        p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
        if check is not None:
            self.assertEqual(p.returncode, check, "%s\nstdout: %s\nstderr: %s" % (cmd, p.stdout, p.stderr))
        return p

    def export(self, store, fmt="csv"):
        out = self.mpibatch("export", store, "--format", fmt, check=0).stdout
        if fmt == "csv":
            return list(csv.DictReader(io.StringIO(out)))
        return [json.loads(line) for line in out.splitlines()]

    def status(self, store):
        return json.loads(self.mpibatch("status", store, "--json", check=0).stdout)

    def test_jobs_lists_the_builtin_jobs(self):
        out = self.mpibatch("jobs", check=0).stdout
        for name in ("pi (version 1)", "sqrt (version 1)", "sleep (version 1)"):
            self.assertIn(name, out)

    def test_every_verb_has_help_with_an_example(self):
        for verb in ("run", "status", "export", "failed", "verify", "compact", "clear", "jobs"):
            out = self.mpibatch(verb, "--help", check=0).stdout
            self.assertIn("Example", out, verb)

    def test_pi_grid_at_1_to_4_ranks_then_rerun_serves_everything_from_the_store(self):
        for np in (1, 2, 3, 4):
            store = self.path("pi%d.h5" % np)
            args = ("run", "pi", "--grid", "row=0..29", "--param", "order=4", "--store", store, "--progress", "none")
            self.mpibatch(*args, np=np, check=0)
            rows = self.export(store)
            self.assertEqual([int(r["row"]) for r in rows], list(range(30)), "task order")
            want = leibniz(4)
            for r in rows:
                self.assertEqual(r["status"], "ok")
                self.assertAlmostEqual(float(r["value"]), want, places=12)
                self.assertAlmostEqual(float(r["deviation"]), want - math.pi, places=12)
            self.mpibatch(*args, np=np, check=0)
            s = self.status(store)
            self.assertEqual((s["total"], s["computed"], s["cached"], s["state"]), (30, 0, 30, "finished"))
            self.assertEqual(s["ranks"], np)

    def test_grid_runs_record_their_spec_and_task_file_runs_their_task_list(self):
        import h5py  # python3-h5py: installed by tools/setup.sh for the tests
        store = self.path("spec.h5")
        self.mpibatch("run", "sqrt", "--grid", "x=0..2999", "--store", store, "--progress", "none", np=2, check=0)
        tasks = self.path("t.csv")
        with open(tasks, "w") as f:
            f.write("x\n" + "".join("%d\n" % x for x in range(2990, 3010)))
        self.mpibatch("run", "sqrt", "--tasks", tasks, "--store", store, "--progress", "none", np=2, check=0)
        with h5py.File(store, "r") as f:
            spec = json.loads(f["runs/1"].attrs["task_spec"])
            self.assertEqual((spec["job"], spec["grid"]), ("sqrt", ["x=0..2999"]))
            self.assertNotIn("task_spec", f["runs/2"].attrs)
        lists = {}
        for name in os.listdir(store + ".d"):
            if name.endswith(".h5"):
                with h5py.File(os.path.join(store + ".d", name), "r") as t:
                    for run in t["runs"]:
                        if "tasks" in t["runs"][run] and len(t["runs"][run]["tasks"]):
                            lists[run] = lists.get(run, 0) + len(t["runs"][run]["tasks"])
        self.assertEqual(lists, {"2": 20}, "16 bytes a task only for the task-file run")
        # Both runs list their tasks in order, the grid's listed again from its spec.
        for run, xs in (("1", range(3000)), ("2", range(2990, 3010))):
            out = self.mpibatch("export", store, "--run", run, "--format", "jsonl", check=0).stdout
            rows = [json.loads(line) for line in out.splitlines()]
            self.assertEqual([r["x"] for r in rows], list(xs))
            self.assertTrue(all(r["status"] == "ok" and r["value"] == r["x"] for r in rows))

    def test_compress_writes_tables_h5py_reads_without_plugins(self):
        import h5py
        def tables(store):
            d = store + ".d"
            return [os.path.join(d, n) for n in sorted(os.listdir(d)) if n.endswith(".h5")]
        def size(store):
            return sum(os.path.getsize(t) for t in tables(store))
        plain, packed = self.path("plain.h5"), self.path("packed.h5")
        for store, extra in ((plain, ()), (packed, ("--compress", "6"))):
            self.mpibatch("run", "sqrt", "--grid", "x=0..49999", "--store", store, "--progress", "none",
                          *extra, np=2, check=0)
        self.assertLess(size(packed), 0.7 * size(plain))
        with h5py.File(packed, "r") as f:
            g = f["jobs/sqrt/v1"]
            self.assertEqual(sorted(g["results/value"][:]), list(range(50000)))
        with h5py.File(tables(packed)[0], "r") as t:
            col = t["jobs/sqrt/v1/results/value"]
            self.assertEqual((col.compression, col.shuffle), ("gzip", True))
            self.assertNotIn("error", t["jobs/sqrt/v1"], "no row failed: no error column")
        with h5py.File(packed, "r") as f:  # the view reads such rows' errors as empty
            self.assertEqual(set(f["jobs/sqrt/v1/error"].asstr()[:]), {""})
        self.assertEqual(self.status(packed)["computed"], 50000)
        self.mpibatch("verify", packed, check=0)
        # compact --compress packs an existing store, even one of one table.
        self.mpibatch("compact", plain, "--compress", "4", check=0)
        with h5py.File(tables(plain)[0], "r") as t:
            self.assertEqual(t["jobs/sqrt/v1/key"].compression, "gzip")
        self.assertLess(size(plain), 1.2 * size(packed))
        self.mpibatch("run", "sqrt", "--compress", "10", "--grid", "x=1", "--store", plain, check=2)

    def test_grid_product_lists_ranges_with_steps(self):
        store = self.path("g.h5")
        self.mpibatch("run", "pi", "--grid", "row=1,5", "--grid", "order=0..4:2", "--store", store,
                      "--progress", "none", check=0)
        got = [(int(r["row"]), int(r["order"])) for r in self.export(store)]
        self.assertEqual(got, [(1, 0), (1, 2), (1, 4), (5, 0), (5, 2), (5, 4)])

    def test_float_ranges_give_the_values_a_user_types_and_integers_stay_exact(self):
        store = self.path("f.h5")
        self.mpibatch("run", "sqrt", "--grid", "x=0.1..0.2:0.002", "--store", store, "--progress", "none",
                      np=2, check=0)
        self.assertEqual([r["x"] for r in self.export(store, "jsonl")][:3], [0.1, 0.102, 0.104])
        # Typed as a list, the same values are the same tasks.
        self.mpibatch("run", "sqrt", "--grid", "x=0.102,0.15,0.2", "--store", store, "--progress", "none",
                      np=2, check=0)
        s = self.status(store)
        self.assertEqual((s["total"], s["cached"], s["computed"]), (3, 3, 0))
        big = self.path("big.h5")
        self.mpibatch("run", "pi", "--grid", "row=9223372036854775000..9223372036854775807:500",
                      "--param", "order=0", "--store", big, "--progress", "none", check=0)
        self.assertEqual([int(r["row"]) for r in self.export(big)], [9223372036854775000, 9223372036854775500])

    def test_tasks_from_csv_jsonl_and_text(self):
        with open(self.path("t.csv"), "w") as f:
            f.write('x\n1.5\n" -2"\n3\n')
        with open(self.path("t.jsonl"), "w") as f:
            f.write('{"x": 4}\n\n{"x": -5.5}\n')
        with open(self.path("t.txt"), "w") as f:
            f.write("6\n-7.25\n")
        for name, want in (("t.csv", [1.5, -2, 3]), ("t.jsonl", [4, -5.5]), ("t.txt", [6, -7.25])):
            store = self.path(name + ".h5")
            self.mpibatch("run", "sqrt", "--tasks", self.path(name), "--store", store, "--progress", "none",
                          np=2, check=0)
            rows = self.export(store, "jsonl")
            self.assertEqual([r["x"] for r in rows], want, name)
            self.assertEqual([r["value"] for r in rows], [abs(x) for x in want], name)

    def test_csv_file_times_grid_with_quoted_fields(self):
        with open(self.path("rows.csv"), "w") as f:
            f.write('row\n"7"\n8\n')
        store = self.path("rg.h5")
        self.mpibatch("run", "pi", "--tasks", self.path("rows.csv"), "--grid", "order=1,2", "--store", store,
                      "--progress", "none", check=0)
        got = [(int(r["row"]), int(r["order"])) for r in self.export(store)]
        self.assertEqual(got, [(7, 1), (7, 2), (8, 1), (8, 2)])

    def test_bad_input_is_one_clear_line_and_exit_2_and_no_store(self):
        with open(self.path("bad.csv"), "w") as f:
            f.write("row,order\n1,2\n2,2\n3,two\n")
        with open(self.path("cols.csv"), "w") as f:
            f.write("row,ordr\n1,2\n")
        with open(self.path("quote.csv"), "w") as f:
            f.write('row,order\n1,2\n"2,3\n')
        with open(self.path("bad.jsonl"), "w") as f:
            f.write('{"x": 1}\n{"x": "one"}\n')
        with open(self.path("broken.jsonl"), "w") as f:
            f.write('{"x": 1}\n{"x": \n')
        with open(self.path("in.csv"), "w") as f:
            f.write("id,text\n1,good\n")
        os.mkdir(self.path("photos"))
        with open(self.path("huge.jsonl"), "w") as f:
            f.write('{"x": 1}\n{"x": 1e400}\n')
        with open(self.path("wide.jsonl"), "w") as f:
            f.write('{"row": 1, "order": 1}\n{"row": 18446744073709551615, "order": 1}\n')
        cases = [
            (["run", "pi", "--tasks", self.path("bad.csv")], ["bad.csv row 3 (line 4)", "column 'order'", "'two'", "int64"]),
            (["run", "pi", "--tasks", self.path("cols.csv")], ["cols.csv header", "no parameter 'ordr'", "row, order"]),
            (["run", "pi", "--tasks", self.path("quote.csv")], ["quote.csv line 3"]),
            (["run", "sqrt", "--tasks", self.path("bad.jsonl")], ["bad.jsonl line 2", "field 'x'", "expected float64, got string"]),
            (["run", "sqrt", "--tasks", self.path("broken.jsonl")], ["broken.jsonl line 2", "not JSON"]),
            (["run", "sqrt", "--tasks", self.path("huge.jsonl")], ["huge.jsonl line 2", "number overflow"]),
            (["run", "pi", "--tasks", self.path("wide.jsonl")], ["wide.jsonl line 2", "out of range for int64"]),
            (["run", "csv_classify", "--param", "input=" + self.path("in.csv"), "--param",
              "output=" + self.dir + "/./in.csv"], ["is --param input=", "(the same file)"]),
            (["run", "image_resize", "--param", "input=" + self.path("photos"), "--param",
              "output=" + self.path("photos") + "/", "--param", "width=4", "--param", "height=4"],
             ["is --param input=", "(the same folder)"]),
            (["run", "pi", "--grid", "row=0..3"], ["parameter 'order' has no value"]),
            (["run", "pi", "--grid", "row=5..3", "--param", "order=1"], ["--grid row=5..3", "ends before it starts"]),
            (["run", "pi", "--grid", "row=0..3", "--param", "order=1", "--param", "order=2"], ["given twice"]),
            (["run", "sqrt", "--grid", "x=nan..1"], ["--grid x=nan..1", "not a finite number"]),
            (["run", "sqrt", "--grid", "x=0..1:1e-300"], ["--grid x=0..1:1e-300", "more than 2^53 values"]),
            (["run", "pi", "--grid", "row=0..1e3", "--param", "order=1"], ["--grid row=0..1e3", "not an int64"]),
            (["run", "pi", "--grid", "row=0..3", "--param", "order=1", "--time-limit", "soon"], ["--time-limit 'soon'"]),
            (["run", "nope"], ["no job named 'nope'", "pi"]),
            (["run", "pi", "--batch", "0", "--param", "row=1", "--param", "order=1"], ["--batch '0'"]),
            (["status", self.path("missing.h5")], ["missing.h5", "no such store"]),
            (["run"], ["job is required"]),
            (["run", "pi", "--gridd", "row=0..3"], ["--gridd"]),
        ]
        for args, needles in cases:
            for np in ((None, 2) if args[0] == "run" and len(args) > 2 else (None,)):
                p = self.mpibatch(*args, np=np)
                self.assertEqual(p.returncode, 2, "%s: %s" % (args, p.stderr))
                for needle in needles:
                    self.assertIn(needle, p.stderr, args)
                self.assertEqual(p.stderr.count(needles[0]), 1, "said once, not by every rank: %s" % p.stderr)
        self.assertEqual([f for f in os.listdir(self.dir) if f.endswith(".h5")], [], "bad input made a store")
        self.assertEqual(open(self.path("in.csv")).read(), "id,text\n1,good\n", "the input is untouched")

    def test_conventions_quoted_command_line_full_messages_and_clear_asks(self):
        import pty
        import shlex
        store = self.path("q.h5")
        args = ["run", "exec", "--shell", "--cmd", "printf '%0300d' {i} >&2; exit 3", "--grid", "i=1..2",
                "--store", store, "--progress", "none"]
        self.mpibatch(*args, check=4)
        # status shows the command line as a shell would read it back.
        line = next(l for l in self.mpibatch("status", store, check=0).stdout.splitlines() if l.startswith("command"))
        self.assertEqual(shlex.split(line[len("command"):])[1:], args)
        self.assertEqual(shlex.split(self.status(store)["command_line"])[1:], args)
        # failed: one line a task, a long message cut unless --full.
        short = self.mpibatch("failed", store, check=4).stdout.splitlines()
        self.assertEqual(len(short), 2)
        self.assertTrue(all(l.endswith("... (--full for all)") and len(l) < 400 for l in short), short)
        full = self.mpibatch("failed", store, "--full", check=4).stdout.splitlines()
        self.assertTrue(all("0" * 290 in l for l in full), full)
        # clear asks on a terminal; n keeps everything, y removes.
        for answer, said, left in ((b"n\n", "nothing removed", 2), (b"y\n", "removed 2 results", 0)):
            master, slave = pty.openpty()
            p = subprocess.Popen([MPIBATCH, "clear", store, "--failed"], stdin=slave, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=ENV, text=True)
            os.close(slave)
            os.write(master, answer)
            out, err = p.communicate(timeout=60)
            os.close(master)
            self.assertEqual(p.returncode, 0, err)
            self.assertIn("Remove 2 results from %s? [y/N]" % store, err)
            self.assertIn(said, err)
            self.assertEqual(len(self.mpibatch("failed", store).stdout.splitlines()), left)

    def test_odd_input_is_read_as_meant_or_refused_in_one_short_line(self):
        # A UTF-8 BOM (Excel's CSV) and CRLF line ends (Windows editors) are read as meant.
        with open(self.path("bom.csv"), "wb") as f:
            f.write(b"\xef\xbb\xbfx\r\n4\r\n9\r\n")
        with open(self.path("bom.txt"), "wb") as f:
            f.write(b"\xef\xbb\xbf16\r\n")
        with open(self.path("cmds.txt"), "wb") as f:
            f.write(b"printf [%s] a\r\nprintf [%s] b\r\n")
        store = self.path("s.h5")
        self.mpibatch("run", "sqrt", "--tasks", self.path("bom.csv"), "--store", store, "--progress", "none", check=0)
        self.assertEqual(sorted(float(r["x"]) for r in self.export(store)), [4.0, 9.0])
        self.mpibatch("run", "sqrt", "--tasks", self.path("bom.txt"), "--store", store, "--progress", "none", check=0)
        self.assertEqual([float(r["x"]) for r in self.export(store)], [16.0])
        ex = self.path("e.h5")
        self.mpibatch("run", "exec", "--tasks", self.path("cmds.txt"), "--store", ex, "--progress", "none", check=0)
        self.assertEqual(sorted(r["stdout_tail"] for r in self.export(ex)), ["[a]", "[b]"])
        # Seconds that are not: refused, naming the option, with no 309-digit bound.
        for option, value in (("--checkpoint-every", "nan"), ("--checkpoint-every", "0"), ("--grace", "nan"),
                              ("--grace", "-1")):
            p = self.mpibatch("run", "sqrt", "--grid", "x=1..2", "--store", store, option, value)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("%s: '%s' is not a number of seconds" % (option, value), p.stderr)
            self.assertLess(len(p.stderr), 200, p.stderr)
        # A 10 MB bad field is named, not echoed.
        with open(self.path("big.csv"), "w") as f:
            f.write("x\n" + "a" * 10000000 + "\n")
        p = self.mpibatch("run", "sqrt", "--tasks", self.path("big.csv"), "--store", store)
        self.assertEqual(p.returncode, 2, p.stderr[:300])
        self.assertIn("(10000000 bytes)", p.stderr)
        self.assertLess(len(p.stderr), 400)

    def test_a_store_that_cannot_open_gives_its_status_on_every_rank(self):
        import h5py
        other = self.path("other.h5")
        with h5py.File(other, "w") as f:
            f["a"] = [1, 2]
        for np in (2, 3, 2, 3, 2):  # the status once depended on which rank exited first
            p = self.mpibatch("run", "sqrt", "--grid", "x=1..3", "--store", other, "--progress", "none", np=np)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertEqual(p.stderr.count("not an mpibatch store"), 1, p.stderr)

    def test_status_of_a_killed_run_says_no_writer_holds_the_lock(self):
        store = self.path("k.h5")
        proc = subprocess.Popen([MPIBATCH, "run", "exec", "--cmd", "sleep 0.1{i}", "--grid", "i=10..99", "--store",
                                 store, "--progress", "none", "--checkpoint-every", "0.2"], env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline and self.mpibatch("status", store).returncode != 0:
            time.sleep(0.2)
        s = self.status(store)
        self.assertEqual((s["state"], s["writer_alive"]), ("running", True))
        proc.kill()
        proc.wait()
        s = self.status(store)
        self.assertEqual((s["state"], s["writer_alive"], s["eta"]), ("running", False, None))
        self.assertIn("running or killed (no writer holds the lock)", self.mpibatch("status", store, check=0).stdout)
        # The next writer says what happened.
        self.mpibatch("run", "exec", "--cmd", "sleep 0.1{i}", "--grid", "i=10..11", "--store", store,
                      "--progress", "none", check=0)
        self.assertEqual(self.status(store)["writer_alive"], False)

    def test_failed_tasks_exit_4_and_are_listed(self):
        store = self.path("s.h5")
        p = self.mpibatch("run", "sleep", "--grid", "seconds=-1,0,-2", "--store", store, "--progress", "none", np=2)
        self.assertEqual(p.returncode, 4, p.stderr)
        p = self.mpibatch("failed", store, check=4)  # as run: 4 when there are failed tasks
        out = p.stdout
        self.assertIn("seconds=-1: seconds must be >= 0", out)
        self.assertIn("seconds=-2: seconds must be >= 0", out)
        self.assertEqual(len(out.splitlines()), 2)
        self.assertIn("2 failed tasks", p.stderr)
        rows = [json.loads(line) for line in self.mpibatch("failed", store, "--json", check=4).stdout.splitlines()]
        self.assertEqual(sorted(r["params"]["seconds"] for r in rows), [-2.0, -1.0])
        self.assertTrue(all(r["job"] == "sleep" and r["error"].startswith("seconds must be >= 0") for r in rows))
        self.assertEqual(self.status(store)["failed"], 2)
        self.assertIn("(1 run)", self.mpibatch("status", store, check=0).stdout)
        # A second table with no failures has no error column; the view still reads every row.
        self.mpibatch("run", "sleep", "--grid", "seconds=0.001,0.002", "--store", store, "--progress", "none",
                      np=2, check=0)
        import h5py
        with h5py.File(store, "r") as f:
            g = f["jobs/sleep/v1"]
            errors = dict(zip(g["params/seconds"][:], g["error"].asstr()[:]))
        self.assertEqual({k: v.split(",")[0] for k, v in errors.items()},
                         {-1.0: "seconds must be >= 0", 0.0: "", -2.0: "seconds must be >= 0",
                          0.001: "", 0.002: ""})

    def test_time_limit_stops_with_3_and_the_same_command_resumes(self):
        store = self.path("t.h5")
        # 120 distinct tasks of about 50 ms: 6 s of work for one worker.
        with open(self.path("secs.txt"), "w") as f:
            f.write("".join("0.05%03d\n" % i for i in range(120)))
        args = ("run", "sleep", "--tasks", self.path("secs.txt"), "--store", store, "--progress", "none")
        p = self.mpibatch(*args, "--time-limit", "3", "--grace", "1", np=2)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("run the same command again to resume", p.stderr)
        s = self.status(store)
        self.assertEqual(s["state"], "stopped")
        self.assertLess(s["computed"], 120)
        # h5py sees every committed result of the stopped run, with no compaction.
        seen = self.h5py_seconds(store)
        self.assertEqual(len(seen), s["computed"])
        self.assertEqual(len(set(seen)), len(seen))
        self.mpibatch(*args, np=2, check=0)
        self.assertEqual(self.status(store)["done"], 120)
        self.assertEqual(sorted(self.h5py_seconds(store)), sorted(float("0.05%03d" % i) for i in range(120)))

    def h5py_seconds(self, store):
        """The sleep job's `seconds` params of the ok rows, read with h5py from the store's view."""
        code = ("import h5py, sys\n"
                "with h5py.File(sys.argv[1], 'r') as f:\n"
                "    g = f['jobs/sleep/v1']\n"
                "    ok = g['status'][:] == 0\n"
                "    assert (g['status'][:] >= 0).all(), 'missing rows'\n"
                "    print(' '.join(repr(x) for x in g['params/seconds'][:][ok]))\n")
        out = subprocess.run(["/usr/bin/python3", "-c", code, store], capture_output=True, text=True, check=True)
        return [float(x) for x in out.stdout.split()]

    def test_h5py_reads_every_result_after_a_kill_and_a_rerun_without_compaction(self):
        store = self.path("k.h5")
        with open(self.path("secs.txt"), "w") as f:
            f.write("".join("0.02%03d\n" % i for i in range(200)))
        args = ["run", "sleep", "--tasks", self.path("secs.txt"), "--store", store, "--progress", "none",
                "--checkpoint-every", "0.2"]
        run = subprocess.Popen(["mpirun", "-n", "3", "--oversubscribe", MPIBATCH, *args], env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline:  # kill -9 once some results are committed
            p = self.mpibatch("status", store, "--json")
            if p.returncode == 0 and json.loads(p.stdout)["done"] >= 40:
                break
            time.sleep(0.1)
        subprocess.run(["pkill", "-KILL", "-s", str(run.pid)])  # mpirun and every rank at once
        run.wait(timeout=60)
        for _ in range(50):  # until the ranks are gone (or zombies)
            if subprocess.run(["pgrep", "-s", str(run.pid)], stdout=subprocess.DEVNULL).returncode != 0:
                break
            time.sleep(0.1)
        self.mpibatch(*args, np=3, check=0)
        want = sorted(float("0.02%03d" % i) for i in range(200))
        self.assertEqual(sorted(self.h5py_seconds(store)), want, "every task once")

    def test_a_command_outlasting_the_time_limit_is_cut_off_even_in_one_process(self):
        # One rank without mpirun: the master keeps the time while a thread runs the
        # command, and at the deadline aborts (3); the command left running must not
        # hold Open MPI's singleton or our output open (that hung the caller).
        store = self.path("long.h5")
        try:
            p = subprocess.run([MPIBATCH, "run", "exec", "--cmd", "sleep 47.{i}", "--grid", "i=1..2",
                                "--time-limit", "5", "--grace", "2", "--store", store, "--progress", "none"],
                               env=ENV, capture_output=True, text=True, timeout=30)
        finally:
            subprocess.run(["pkill", "-f", r"^sleep 47\."])
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("workers did not stop in time", p.stderr)
        s = self.status(store)
        self.assertEqual((s["state"], s["done"]), ("stopped", 0))

    def test_status_of_a_store_that_a_run_is_writing(self):
        store = self.path("live.h5")
        with open(self.path("secs.txt"), "w") as f:
            f.write("".join("0.02%02d\n" % i for i in range(100)))
        run = subprocess.Popen(["mpirun", "-n", "2", "--oversubscribe", MPIBATCH, "run", "sleep", "--tasks",
                                self.path("secs.txt"), "--store", store, "--progress", "none",
                                "--checkpoint-every", "0.2"], env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        seen = []
        try:
            deadline = time.time() + 60
            while run.poll() is None and time.time() < deadline:
                p = self.mpibatch("status", store, "--json")
                if p.returncode == 0:
                    s = json.loads(p.stdout)
                    if s["state"] == "running":
                        seen.append(s["done"])
                time.sleep(0.2)
        finally:
            run.wait(timeout=60)
        self.assertEqual(run.returncode, 0)
        self.assertGreaterEqual(len(seen), 2, "status never saw the run running")
        self.assertEqual(seen, sorted(seen))
        self.assertEqual(self.status(store)["done"], 100)

    def test_exec_commands_file_template_shell_retries_and_no_rerun(self):
        log = self.path("ran.txt")
        with open(self.path("cmds.txt"), "w") as f:
            for i in range(20):
                f.write("sh -c 'echo %d >> %s; echo out%d'\n" % (i, log, i))
            f.write("sh -c 'echo oops >&2; exit 3'\n")
        store = self.path("e.h5")
        args = ("run", "exec", "--tasks", self.path("cmds.txt"), "--store", store, "--progress", "none")
        p = self.mpibatch(*args, np=3)
        self.assertEqual(p.returncode, 4, p.stderr)
        rows = self.export(store, "jsonl")
        self.assertEqual(len(rows), 21)
        self.assertEqual([r["stdout_tail"] for r in rows[:20]], ["out%d\n" % i for i in range(20)])
        self.assertEqual(rows[20]["status"], "failed")
        self.assertEqual(rows[20]["error"], "exit code 3; stderr: oops")
        self.assertEqual((rows[20]["exit_code"], rows[20]["stderr_tail"]), (3, "oops\n"))
        p = self.mpibatch(*args, "--skip-failed", np=3)
        self.assertEqual(p.returncode, 4)
        with open(log) as f:
            self.assertEqual(sorted(int(x) for x in f.read().split()), list(range(20)), "a command ran twice")
        # A template with placeholders from a grid; no shell unless asked for.
        store = self.path("t.h5")
        self.mpibatch("run", "exec", "--cmd", "echo {x}-{y} $HOME", "--grid", "x=1..2", "--grid", "y=a,b",
                      "--store", store, "--progress", "none", np=2, check=0)
        self.assertEqual([r["stdout_tail"] for r in self.export(store, "jsonl")],
                         ["1-a $HOME\n", "1-b $HOME\n", "2-a $HOME\n", "2-b $HOME\n"])
        store = self.path("sh.h5")
        self.mpibatch("run", "exec", "--shell", "--cmd", "echo $(( {n} * 2 ))", "--grid", "n=1..3",
                      "--store", store, "--progress", "none", check=0)
        self.assertEqual([r["stdout_tail"] for r in self.export(store, "jsonl")], ["2\n", "4\n", "6\n"])
        # Retries: this command fails on its first attempt only.
        mark = self.path("mark")
        store = self.path("r.h5")
        self.mpibatch("run", "exec", "--shell", "--cmd", "test -e %s{i} || { touch %s{i}; exit 1; }" % (mark, mark),
                      "--grid", "i=0..5", "--retries", "1", "--store", store, "--progress", "none", np=2, check=0)
        # Full output in files, named by the command's hash.
        outdir, store = self.path("outs"), self.path("o.h5")
        self.mpibatch("run", "exec", "--shell", "--cmd", "seq 1 {n}", "--grid", "n=5000,3", "--output-dir", outdir,
                      "--store", store, "--progress", "none", check=0)
        outs = sorted(open(os.path.join(outdir, f)).read() for f in os.listdir(outdir) if f.endswith(".out"))
        self.assertEqual(outs, sorted(["".join("%d\n" % i for i in range(1, 5001)), "1\n2\n3\n"]))
        self.assertEqual(len(self.export(store, "jsonl")[0]["stdout_tail"]), 4096)  # the tail only
        p = self.mpibatch("run", "exec", "--cmd", "echo {x}", "--grid", "x=1", "--param", "shell=true")
        self.assertEqual(p.returncode, 2)
        self.assertIn("exec --cmd has no parameter 'shell'", p.stderr)
        # --shell=false is no shell; exec's options are refused for other jobs.
        store = self.path("ns.h5")
        self.mpibatch("run", "exec", "--shell=false", "--cmd", "echo $(( {n} ))", "--grid", "n=1",
                      "--store", store, "--progress", "none", check=0)
        self.assertEqual([r["stdout_tail"] for r in self.export(store, "jsonl")], ["$(( 1 ))\n"])
        p = self.mpibatch("run", "sqrt", "--grid", "x=1", "--cmd", "echo", "--store", self.path("q.h5"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("--cmd is an option of exec, not of job sqrt", p.stderr)

    def test_exec_output_files_named_from_placeholders_never_through_a_symlink(self):
        outdir = self.path("named")
        os.mkdir(outdir)
        victim = self.path("victim.txt")
        with open(victim, "w") as f:
            f.write("keep me")
        os.symlink(victim, os.path.join(outdir, "s2_0.5.out"))  # planted where a task writes
        store = self.path("n.h5")
        p = self.mpibatch("run", "exec", "--cmd", "echo {sample} {alpha}", "--grid", "sample=s1,s2,a/b",
                          "--grid", "alpha=0.1,0.5", "--output-dir", outdir, "--output-name", "{sample}_{alpha}",
                          "--store", store, "--progress", "none", np=3)
        self.assertEqual(p.returncode, 4, p.stderr)  # the one task whose file is a symlink fails
        with open(victim) as f:
            self.assertEqual(f.read(), "keep me")
        with open(os.path.join(outdir, "a_b_0.1.out")) as f:
            self.assertEqual(f.read(), "a/b 0.1\n")  # '/' in a value becomes '_'
        failed = [r for r in self.export(store, "jsonl") if r["status"] == "failed"]
        self.assertEqual([(r["sample"], r["alpha"]) for r in failed], [("s2", "0.5")])
        self.assertIn("cannot write %s/s2_0.5.out" % outdir, failed[0]["error"])
        self.assertEqual(sorted(n for n in os.listdir(outdir) if n.endswith(".out")),
                         ["a_b_0.1.out", "a_b_0.5.out", "s1_0.1.out", "s1_0.5.out", "s2_0.1.out", "s2_0.5.out"])
        # A FIFO or a hard link planted where a task writes fails that task, without a hang and
        # without touching the file's other name; Parallel's {f/.} works in names too.
        os.mkfifo(os.path.join(outdir, "p_fifo.out"))
        os.link(victim, os.path.join(outdir, "p_link.out"))
        p = self.mpibatch("run", "exec", "--cmd", "echo {f}", "--grid", "f=fifo,link,d/e.txt",
                          "--output-dir", outdir, "--output-name", "p_{f/.}", "--store", self.path("fl.h5"),
                          "--progress", "none", np=2)
        self.assertEqual(p.returncode, 4, p.stderr)
        errors = sorted(r["error"] for r in self.export(self.path("fl.h5"), "jsonl") if r["status"] == "failed")
        self.assertEqual(errors, ["cannot write %s/p_fifo.out: not a regular file" % outdir,
                                  "cannot write %s/p_link.out: a hard link (it has other names)" % outdir])
        with open(victim) as f:
            self.assertEqual(f.read(), "keep me")
        self.assertTrue(os.path.exists(os.path.join(outdir, "p_e.out")))
        # Tasks that differ only by --env get files of their own.
        envdir = self.path("envout")
        self.mpibatch("run", "exec", "--shell", "--cmd", "echo $A {x}", "--grid", "a=1,2", "--grid", "x=z",
                      "--env", "A={a}", "--output-dir", envdir, "--store", self.path("ev.h5"),
                      "--progress", "none", np=2, check=0)
        outs = []
        for n in sorted(os.listdir(envdir)):
            if n.endswith(".out"):
                with open(os.path.join(envdir, n)) as f:
                    outs.append(f.read())
        self.assertEqual(sorted(outs), ["1 z\n", "2 z\n"])
        # Two commands, one name: refused before anything runs.
        p = self.mpibatch("run", "exec", "--cmd", "echo {sample} {alpha}", "--grid", "sample=s1",
                          "--grid", "alpha=1,2", "--output-dir", outdir, "--output-name", "{sample}",
                          "--store", self.path("dup.h5"), np=2, check=2)
        self.assertIn("--output-name: %s/s1.out would hold the output of" % outdir, p.stderr)
        for bad, says in ((("--output-name", "{x}"), "--output-name names files in --output-dir"),
                          (("--output-dir", outdir, "--output-name", "{y}"), "{y} is not a placeholder of --cmd"),
                          (("--output-dir", outdir, "--output-name", "{x}" + "y" * 300), "(301 bytes)")):
            p = self.mpibatch("run", "exec", "--cmd", "echo {x}", "--grid", "x=1", *bad,
                              "--store", self.path("bad.h5"), check=2)
            self.assertIn(says, p.stderr)

    def test_exec_parallel_habits_workdir_env_and_json_results(self):
        import h5py
        def computed(p):
            self.assertIn(p.returncode, (0, 4), p.stderr)
            return int(re.search(r"(\d+) computed", p.stderr).group(1))
        # {} and Parallel's {.} {/} {//} {/.} over a plain list of files.
        with open(self.path("files.txt"), "w") as f:
            f.write("in/a.b/x y.jpg\nc.txt\n")
        store = self.path("p.h5")
        self.mpibatch("run", "exec", "--cmd", "echo {} {.} {/} {//} {/.}", "--tasks", self.path("files.txt"),
                      "--store", store, "--progress", "none", np=2, check=0)
        rows = self.export(store, "jsonl")
        self.assertEqual([r["stdout_tail"] for r in rows],
                         ["in/a.b/x y.jpg in/a.b/x y x y.jpg in/a.b x y\n", "c.txt c c.txt . c\n"])
        self.assertEqual([r["1"] for r in rows], ["in/a.b/x y.jpg", "c.txt"])
        # --workdir and --env per task, from placeholders; both are part of the key.
        for d in ("w1", "w2"):
            os.mkdir(self.path(d))
        store = self.path("w.h5")
        args = ("run", "exec", "--shell", "--cmd", "echo $PWD $MB_X $MB_Y", "--grid", "d=w1,w2",
                "--workdir", self.path("{d}"), "--env", "MB_X=x{d}", "--env", "MB_Y=it's",
                "--store", store, "--progress", "none")
        self.assertEqual(computed(self.mpibatch(*args, np=3)), 2)
        rows = self.export(store, "jsonl")
        self.assertEqual([r["stdout_tail"] for r in rows],
                         ["%s xw1 it's\n" % self.path("w1"), "%s xw2 it's\n" % self.path("w2")])
        self.assertEqual(rows[0]["env"], "MB_X=xw1\nMB_Y=it's")
        self.assertEqual(computed(self.mpibatch(*args, np=3)), 0)
        self.assertEqual(computed(self.mpibatch(*args[:-2], "--env", "MB_Z=1", *args[-2:], np=3)), 2)
        p = self.mpibatch("run", "exec", "--cmd", "true {d}", "--grid", "d=nowhere", "--workdir",
                          self.path("{d}"), "--store", self.path("nw.h5"), "--progress", "none", np=2, check=4)
        self.assertIn("cannot run 'true' in %s: No such file" % self.path("nowhere"),
                      self.export(self.path("nw.h5"), "jsonl")[0]["error"])
        # --json-result: a Python script's last line of output as typed columns.
        script = self.path("fit.py")
        with open(script, "w") as f:
            f.write("import json, sys\n"
                    "a = float(sys.argv[1])\n"
                    "print('fitting', a)\n"
                    "if a > 1: raise ValueError('alpha too large: %s' % a)\n"
                    "print(json.dumps({'loss': a * a, 'iters': int(10 * a), 'ok': True, 'note': 'a=%g' % a}))\n")
        store = self.path("j.h5")
        args = ("run", "exec", "--cmd", "python3 %s {alpha}" % script, "--grid", "alpha=0.5,1,2",
                "--json-result", "loss,iters:int,ok:bool,note:str", "--store", store, "--progress", "none")
        p = self.mpibatch(*args, np=2, check=4)
        rows = self.export(store, "jsonl")
        self.assertEqual([(r["alpha"], r["loss"], r["iters"], r["ok"], r["note"], r["status"]) for r in rows],
                         [("0.5", 0.25, 5, True, "a=0.5", "ok"), ("1", 1.0, 10, True, "a=1", "ok"),
                          ("2", None, 0, False, "", "failed")])
        self.assertTrue(rows[2]["error"].endswith("ValueError: alpha too large: 2.0"), rows[2]["error"])
        self.assertEqual(rows[2]["exit_code"], 1)
        with h5py.File(store, "r") as f:
            g = f["jobs/exec/v2/results"]
            self.assertEqual(g["iters"].dtype.kind, "i")
            self.assertEqual(g["ok"].dtype, bool)
            self.assertEqual(sorted(g["loss"][:].tolist())[:2], [0.25, 1.0])
        # Another type for a stored column is refused before the run, saying how to go on.
        p = self.mpibatch("run", "exec", "--cmd", "python3 %s {alpha}" % script, "--grid", "alpha=0.5",
                          "--json-result", "loss:int", "--store", store, check=2)
        self.assertIn("result 'loss' of type float64, not int64; give the job a new version, or use another "
                      "store", p.stderr)
        # A missing key or another type fails the task, naming it.
        p = self.mpibatch("run", "exec", "--cmd", "echo {j}", "--grid", 'j={"loss": "high"},{"iters": 3}',
                          "--json-result", "loss", "--store", self.path("jb.h5"), "--progress", "none", check=4)
        errors = sorted(r["error"] for r in self.export(self.path("jb.h5"), "jsonl"))
        self.assertEqual(errors, ['--json-result: \'loss\' is "high", not float64',
                                  '--json-result: no \'loss\' in {"iters":3}'])
        # Python's NaN and Infinity, and a last line longer than the 4 KiB tail, are read.
        with open(self.path("nan.py"), "w") as f:
            f.write("import json\nprint(json.dumps({'a': float('nan'), 'b': float('inf'), 'pad': 'x' * 6000}))\n")
        self.mpibatch("run", "exec", "--cmd", "python3 %s {i}" % self.path("nan.py"), "--grid", "i=1",
                      "--json-result", "a,b,pad:str", "--store", self.path("nan.h5"), "--progress", "none",
                      check=0)
        with h5py.File(self.path("nan.h5"), "r") as f:
            g = f["jobs/exec/v2/results"]
            self.assertTrue(math.isnan(g["a"][0]) and math.isinf(g["b"][0]) and len(g["pad"][0]) == 6000)
        # A value that would smuggle a second variable into --env is refused; so are columns
        # export could not tell apart.
        with open(self.path("inj.jsonl"), "w") as f:
            f.write('{"v": "x\\nLD_PRELOAD=/tmp/evil.so"}\n')
        p = self.mpibatch("run", "exec", "--cmd", "env", "--tasks", self.path("inj.jsonl"), "--env", "V={v}",
                          "--store", self.path("inj.h5"), check=2)
        self.assertIn("--env V=: a task's value holds a newline", p.stderr)
        with open(self.path("cols.csv"), "w") as f:
            f.write("f,status\nA,x\n")
        p = self.mpibatch("run", "exec", "--cmd", "echo {f}", "--tasks", self.path("cols.csv"),
                          "--store", self.path("cols.h5"), check=2)
        self.assertIn("two columns would be named 'status'", p.stderr)
        p = self.mpibatch("run", "exec", "--cmd", "echo {loss}", "--grid", "loss=1", "--json-result", "loss",
                          "--store", self.path("cols.h5"), check=2)
        self.assertIn("two columns would be named 'loss'", p.stderr)
        for bad, says in (("loss:complex", "a type of float, int, bool or str"),
                          ("exit_code", "a result of exec itself"), ("a,a", "given twice")):
            p = self.mpibatch("run", "exec", "--cmd", "echo {x}", "--grid", "x=1", "--json-result", bad,
                              "--store", self.path("bad.h5"), check=2)
            self.assertIn(says, p.stderr)

    def test_exec_values_arrive_as_one_argument_each_substituted_once(self):
        hostile = ["b c.txt", "a' b 'c", "'", "{b}", "$(echo pwned).txt", "it's.txt", "", "x;y|z&", "\\n"]
        with open(self.path("vals.jsonl"), "w") as f:
            for v in hostile:
                f.write(json.dumps({"f": v}) + "\n")
        for mode in ([], ["--shell"]):
            store = self.path("q%d.h5" % len(mode))
            p = self.mpibatch("run", "exec", *mode, "--cmd", "printf [%s] {f}", "--tasks", self.path("vals.jsonl"),
                              "--store", store, "--progress", "none", np=2)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual([r["stdout_tail"] for r in self.export(store, "jsonl")],
                             ["[%s]" % v for v in hostile], mode)
        # A value is never read again for placeholders; --unquoted pastes values as text.
        store = self.path("once.h5")
        self.mpibatch("run", "exec", "--cmd", "echo {a} {b}", "--grid", "a={b}", "--grid", "b=XYZ",
                      "--store", store, "--progress", "none", check=0)
        self.assertEqual(self.export(store, "jsonl")[0]["stdout_tail"], "{b} XYZ\n")
        store = self.path("raw.h5")
        self.mpibatch("run", "exec", "--unquoted", "--cmd", "printf [%s] {f}", "--param", "f=b c",
                      "--store", store, "--progress", "none", check=0)
        self.assertEqual(self.export(store, "jsonl")[0]["stdout_tail"], "[b][c]")
        # {#}: the task's number, from 1 in the run's order.
        store = self.path("num.h5")
        self.mpibatch("run", "exec", "--cmd", "echo {#}-{x}", "--grid", "x=a,b,c", "--store", store,
                      "--progress", "none", np=2, check=0)
        self.assertEqual([r["stdout_tail"] for r in self.export(store, "jsonl")], ["1-a\n", "2-b\n", "3-c\n"])

    def test_exec_commands_start_with_default_signals_and_comments_are_skipped(self):
        store = self.path("sig.h5")
        self.mpibatch("run", "exec", "--shell", "--cmd", "sleep 5 & P=$!; sleep 0.2; kill $P; wait $P; echo {x} rc=$?",
                      "--grid", "x=1", "--store", store, "--progress", "none", np=2, check=0)
        self.assertEqual(self.export(store, "jsonl")[0]["stdout_tail"], "1 rc=143\n")
        with open(self.path("cmds.txt"), "w") as f:
            f.write("# a comment\n\necho one\n   # indented comment\necho two\n")
        store = self.path("c.h5")
        self.mpibatch("run", "exec", "--tasks", self.path("cmds.txt"), "--store", store, "--progress", "none", check=0)
        self.assertEqual([r["stdout_tail"] for r in self.export(store, "jsonl")], ["one\n", "two\n"])

    def test_exec_task_timeout_fails_the_task_and_retries_apply(self):
        store = self.path("to.h5")
        p = self.mpibatch("run", "exec", "--cmd", "sleep {s}", "--grid", "s=0.1,30", "--task-timeout", "1",
                          "--retries", "1", "--store", store, "--progress", "none", np=2)
        self.assertEqual(p.returncode, 4, p.stderr)
        rows = self.export(store, "jsonl")
        self.assertEqual([r["status"] for r in rows], ["ok", "failed"])
        self.assertTrue(rows[1]["error"].startswith("timed out after 1 s (--task-timeout)"), rows[1]["error"])
        self.assertEqual((rows[1]["exit_code"], rows[1]["signal"]), (-1, 15))

    def test_exec_failed_rows_carry_exit_code_signal_and_output(self):
        import h5py
        script = self.path("fit.py")
        with open(script, "w") as f:
            f.write("import sys\nprint('started', sys.argv[1])\n"
                    "if sys.argv[1] == 'bad':\n    raise ValueError('bad sample ' + sys.argv[1])\n")
        with open(self.path("cmds.txt"), "w") as f:
            f.write("python3 %s good\npython3 %s bad\nsh -c 'echo out; exit 3'\nsh -c 'kill -9 $$'\n"
                    % (script, script))
        for np in (1, 2, 3, 4):
            store = self.path("f%d.h5" % np)
            p = self.mpibatch("run", "exec", "--tasks", self.path("cmds.txt"), "--store", store,
                              "--progress", "none", np=np)
            self.assertEqual(p.returncode, 4, p.stderr)
            rows = self.export(store, "jsonl")
            self.assertEqual([r["status"] for r in rows], ["ok", "failed", "failed", "failed"])
            self.assertEqual([(r["exit_code"], r["signal"]) for r in rows], [(0, 0), (1, 0), (3, 0), (-1, 9)])
            self.assertEqual(rows[1]["stdout_tail"], "started bad\n")
            self.assertIn("Traceback (most recent call last)", rows[1]["stderr_tail"])
            # The message keeps the traceback's last lines, ending with the exception.
            self.assertTrue(rows[1]["error"].startswith("exit code 1; stderr: "), rows[1]["error"])
            self.assertTrue(rows[1]["error"].endswith("ValueError: bad sample bad"), rows[1]["error"])
            self.assertNotIn("\n", rows[1]["error"])
            self.assertEqual(rows[2]["stdout_tail"], "out\n")
            self.assertEqual(rows[3]["error"], "killed by signal 9")
            self.assertGreater(rows[2]["seconds"], 0)
        # The same in the store's columns, through h5py, and after a compaction.
        self.mpibatch("compact", store, check=0)
        with h5py.File(store, "r") as f:
            g = f["jobs/exec/v2"]
            by_cmd = dict(zip(g["params/command"].asstr()[:], zip(g["status"][:], g["results/exit_code"][:],
                                                                    g["results/signal"][:])))
        self.assertEqual(by_cmd["sh -c 'echo out; exit 3'"], (1, 3, 0))
        self.assertEqual(by_cmd["sh -c 'kill -9 $$'"], (1, -1, 9))

    def test_exec_commands_cut_short_by_a_stop_are_not_failures(self):
        # Slurm signals every process of a job step, commands included: a stop
        # that kills a command leaves its task pending, not failed.
        store = self.path("int.h5")
        args = ["run", "exec", "--cmd", "sleep 30{i}", "--grid", "i=1..3", "--store", store, "--progress", "none"]
        for np in (None, 2):
            cmd = [MPIBATCH, *args] if np is None else ["mpirun", "-n", str(np), "--oversubscribe", MPIBATCH, *args]
            run = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
            deadline = time.time() + 60
            while time.time() < deadline and subprocess.run(["pgrep", "-f", "sleep 30[123]"]).returncode != 0:
                time.sleep(0.1)
            time.sleep(0.3)
            if np is None:
                os.killpg(run.pid, signal.SIGTERM)
            else:  # every process of the job but mpirun, as Slurm signals a step's processes
                pids = subprocess.run(["pgrep", "-s", str(run.pid)], capture_output=True, text=True).stdout.split()
                for pid in pids:
                    if int(pid) != run.pid:
                        try:
                            os.kill(int(pid), signal.SIGTERM)
                        except ProcessLookupError:
                            pass
            _, err = run.communicate(timeout=120)
            self.assertEqual(run.returncode, 3, err)
            rows = self.export(store, "jsonl")
            self.assertEqual([r["status"] for r in rows], ["pending"] * 3, (np, rows))
            self.assertIn("0 failed", err)

    def test_halt_after_n_or_a_share_of_failures(self):
        for spec, cmd in (("fail=2", "test {x} -lt 3"), ("soon,fail=50%", "test {x} -gt 100")):
            store = self.path("h%d.h5" % len(spec))
            p = self.mpibatch("run", "exec", "--cmd", cmd, "--grid", "x=1..30", "--batch", "1", "--halt", spec,
                              "--store", store, "--progress", "none", np=2)
            self.assertEqual(p.returncode, 4, p.stderr)
            states = [r["status"] for r in self.export(store, "jsonl")]
            self.assertGreaterEqual(states.count("failed"), 2, (spec, states))
            self.assertGreater(states.count("pending"), 10, (spec, states))
        for bad, says in (("now,fail=1", "use soon"), ("fail=0", "at least 1"), ("fail=150%", "percentage"),
                          ("success=1", "only failures")):
            p = self.mpibatch("run", "sqrt", "--grid", "x=1", "--halt", bad, "--store", self.path("hb.h5"))
            self.assertEqual(p.returncode, 2, bad)
            self.assertIn("--halt '%s': " % bad, p.stderr)
            self.assertIn(says, p.stderr)

    def test_exec_key_is_what_decides_the_result(self):
        def computed(p):
            self.assertIn(p.returncode, (0,), p.stderr)
            return int(re.search(r"(\d+) computed", p.stderr).group(1))
        store, dep = self.path("k.h5"), self.path("dep.txt")
        base = ("run", "exec", "--cmd", "echo {x}", "--grid", "x=1..3", "--store", store, "--progress", "none")
        self.assertEqual(computed(self.mpibatch(*base, np=2)), 3)
        # --output-dir changes where output goes, not what a command gives: nothing reruns.
        self.assertEqual(computed(self.mpibatch(*base, "--output-dir", self.path("outs"), np=2)), 0)
        # --depends: a change of the file's content reruns every task, nothing else does.
        with open(dep, "w") as f:
            f.write("v1")
        self.assertEqual(computed(self.mpibatch(*base, "--depends", dep, np=2)), 3)
        self.assertEqual(computed(self.mpibatch(*base, "--depends", dep, np=2)), 0)
        with open(dep, "w") as f:
            f.write("v2")
        self.assertEqual(computed(self.mpibatch(*base, "--depends", dep, np=2)), 3)
        # --depends-param: each task's own file; a change reruns exactly the tasks naming it.
        a, b = self.path("a.txt"), self.path("b.txt")
        for path, text in ((a, "A1"), (b, "B1")):
            with open(path, "w") as f:
                f.write(text)
        store2 = self.path("p.h5")
        args = ("run", "exec", "--cmd", "cat {f}", "--grid", "f=%s,%s" % (a, b), "--depends-param", "f",
                "--store", store2, "--progress", "none")
        self.assertEqual(computed(self.mpibatch(*args, np=3)), 2)
        with open(a, "w") as f:
            f.write("A2")
        self.assertEqual(computed(self.mpibatch(*args, np=3)), 1)
        self.assertEqual([r["stdout_tail"] for r in self.export(store2, "jsonl")], ["A2", "B1"])
        p = self.mpibatch("run", "exec", "--cmd", "cat {f}", "--grid", "f=x", "--depends-param", "g",
                          "--store", self.path("bad.h5"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("--depends-param g: --cmd has no {g}", p.stderr)
        p = self.mpibatch("run", "exec", "--cmd", "cat {f}", "--grid", "f=x", "--depends", self.path("none.txt"),
                          "--store", self.path("bad.h5"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("--depends %s: No such file" % self.path("none.txt"), p.stderr)

    def test_exec_placeholders_and_task_file_columns_are_param_columns(self):
        import h5py
        def computed(p):
            self.assertEqual(p.returncode, 0, p.stderr)
            return int(re.search(r"(\d+) computed", p.stderr).group(1))
        for np in (1, 2, 3, 4):
            store = self.path("g%d.h5" % np)
            grid = ("run", "exec", "--cmd", "echo {x}-{y}", "--grid", "x=1..2", "--grid", "y=a,b",
                    "--store", store, "--progress", "none")
            self.assertEqual(computed(self.mpibatch(*grid, np=np)), 4)
            rows = self.export(store, "jsonl")
            self.assertEqual([(r["x"], r["y"], r["stdout_tail"]) for r in rows],
                             [("1", "a", "1-a\n"), ("1", "b", "1-b\n"), ("2", "a", "2-a\n"), ("2", "b", "2-b\n")])
        # A tasks file's every column is kept, those the template does not name too; they are
        # not part of the key: new sample ids over the same commands rerun nothing.
        with open(self.path("t.csv"), "w") as f:
            f.write("f,sample\nA,s1\nB,s2\n")
        args = ("run", "exec", "--cmd", "echo {f}", "--tasks", self.path("t.csv"), "--store", store,
                "--progress", "none")
        self.assertEqual(computed(self.mpibatch(*args, np=2)), 2)
        rows = self.export(store, "csv")
        self.assertEqual([(r["f"], r["sample"], r["stdout_tail"]) for r in rows],
                         [("A", "s1", "A\n"), ("B", "s2", "B\n")])
        self.assertEqual(rows[0]["x"], "")  # the store's columns of its earlier runs are empty here
        with open(self.path("t.csv"), "w") as f:
            f.write("f,sample\nA,s9\nB,s8\n")
        self.assertEqual(computed(self.mpibatch(*args, np=2)), 0)
        # Placeholders in another order than the store's columns land in theirs.
        self.assertEqual(computed(self.mpibatch("run", "exec", "--cmd", "echo {y}{x}", "--grid", "x=9",
                                                "--grid", "y=z", "--store", self.path("o.h5"), np=2)), 1)
        self.mpibatch("run", "exec", "--cmd", "echo {x}{y}", "--grid", "x=8", "--grid", "y=w",
                      "--store", self.path("o.h5"), np=2, check=0)
        self.assertEqual([(r["x"], r["y"], r["stdout_tail"]) for r in self.export(self.path("o.h5"), "jsonl")],
                         [("8", "w", "8w\n")])
        self.mpibatch("run", "exec", "--cmd", "echo {y}{x}", "--grid", "x=9", "--grid", "y=z",
                      "--store", self.path("o.h5"), np=2, check=0)
        self.assertEqual([(r["x"], r["y"]) for r in self.export(self.path("o.h5"), "jsonl")], [("9", "z")])
        # h5py reads every run's columns; rows of a run without a column read "" there.
        with h5py.File(store, "r") as f:
            g = f["jobs/exec/v2/params"]
            got = sorted(zip(g["command"].asstr()[:], g["x"].asstr()[:], g["y"].asstr()[:],
                             g["f"].asstr()[:], g["sample"].asstr()[:]))
        self.assertEqual(got, [("echo 1-a", "1", "a", "", ""), ("echo 1-b", "1", "b", "", ""),
                               ("echo 2-a", "2", "a", "", ""), ("echo 2-b", "2", "b", "", ""),
                               ("echo A", "", "", "A", "s1"), ("echo B", "", "", "B", "s2")])
        self.mpibatch("compact", store, check=0)
        self.mpibatch("verify", store, check=0)
        self.assertEqual([r["sample"] for r in self.export(store, "jsonl")], ["s1", "s2"])
        # JSON lines too: every key is a column; numbers serve placeholders as their JSON text.
        with open(self.path("t.jsonl"), "w") as f:
            f.write('{"f": "C", "n": 3, "tag": "t1"}\n{"f": "D", "n": 4.5, "tag": "t2"}\n')
        jl = self.path("jl.h5")
        self.mpibatch("run", "exec", "--cmd", "echo {f} {n}", "--tasks", self.path("t.jsonl"), "--store", jl,
                      "--progress", "none", np=2, check=0)
        self.assertEqual([(r["f"], r["n"], r["tag"], r["stdout_tail"]) for r in self.export(jl, "jsonl")],
                         [("C", "3", "t1", "C 3\n"), ("D", "4.5", "t2", "D 4.5\n")])
        # A column named like exec's own params is refused, naming it.
        with open(self.path("bad.csv"), "w") as f:
            f.write("f,command\nA,x\n")
        p = self.mpibatch("run", "exec", "--cmd", "echo {f}", "--tasks", self.path("bad.csv"),
                          "--store", self.path("bad.h5"), check=2)
        self.assertIn("'command' is named like a param of job exec itself", p.stderr)

    def test_csv_classify_matches_the_serial_run_byte_for_byte(self):
        import random
        rng = random.Random(7)
        src = self.path("in.csv")
        with open(src, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "name", "note"])
            for i in range(1000):
                w.writerow([i, "n%d" % rng.randint(0, 99),
                            rng.choice(["plain", "with, comma", 'with "quote"', "multi\nline", " padded "])])
        serial = self.path("serial.csv")
        subprocess.run([os.path.join(os.path.dirname(MPIBATCH), "csv_classify_serial"), src, serial], check=True)
        want = open(serial, "rb").read()
        for np in (1, 2, 3, 4):
            out, store = self.path("out%d.csv" % np), self.path("c%d.h5" % np)
            args = ("run", "csv_classify", "--param", "input=" + src, "--param", "output=" + out,
                    "--param", "rows_per_task=64", "--store", store, "--progress", "none")
            self.mpibatch(*args, np=np, check=0)
            self.assertEqual(open(out, "rb").read(), want, "np %d" % np)
            os.remove(out)
            self.mpibatch(*args, np=np, check=0)  # from the store: the same bytes again
            self.assertEqual(open(out, "rb").read(), want)
            self.assertEqual(self.status(store)["computed"], 0)
        with open(src) as f:
            rows = list(csv.reader(f))
        self.assertEqual([r[:3] for r in csv.reader(open(out))], rows, "fields kept exactly")
        # One changed row: only its chunk of 64 rows is computed again.
        rows[500][1] = "changed"
        with open(src, "w", newline="") as f:
            csv.writer(f).writerows(rows)
        self.mpibatch("run", "csv_classify", "--param", "input=" + src, "--param", "output=" + out,
                      "--param", "rows_per_task=64", "--store", self.path("c4.h5"), "--progress", "none", check=0)
        self.assertEqual(self.status(self.path("c4.h5"))["computed"], 1)
        # A malformed row names its line; nothing is written.
        with open(self.path("bad.csv"), "w") as f:
            f.write("a,b\n1,2\n3\n")
        p = self.mpibatch("run", "csv_classify", "--param", "input=" + self.path("bad.csv"),
                          "--param", "output=" + self.path("never.csv"), np=2)
        self.assertEqual(p.returncode, 2)
        self.assertIn("bad.csv line 3: 1 fields; the header has 2", p.stderr)
        self.assertFalse(os.path.exists(self.path("never.csv")))
        p = self.mpibatch("run", "csv_classify", "--param", "input=" + src)
        self.assertEqual(p.returncode, 2)
        self.assertIn("needs --param output=string", p.stderr)

    def test_image_resize_every_image_and_a_bad_file_fails_alone(self):
        src, dst = self.path("in"), self.path("out")
        os.mkdir(src)
        subprocess.run([IMAGES, "make", src], check=True)
        store = self.path("img.h5")
        args = ("run", "image_resize", "--param", "input=" + src, "--param", "output=" + dst,
                "--param", "width=16", "--param", "height=12", "--store", store, "--progress", "none")
        p = self.mpibatch(*args, np=3)
        self.assertEqual(p.returncode, 4, p.stderr)  # bad.png failed; the rest did not
        rows = {os.path.basename(r["path"]): r for r in self.export(store, "jsonl")}
        self.assertEqual(sorted(rows), ["a.png", "b.jpg", "bad.png", "c.pgm"])
        self.assertEqual(rows["bad.png"]["status"], "failed")
        self.assertIn("bad.png: not an image", rows["bad.png"]["error"])
        for name, (w, h, ch) in (("a.png", (40, 30, 3)), ("b.jpg", (64, 48, 3)), ("c.pgm", (20, 10, 1))):
            r = rows[name]
            self.assertEqual((r["status"], r["in_width"], r["in_height"], r["channels"]), ("ok", w, h, ch))
            self.assertEqual(r["output_path"], os.path.join(dst, name))
            size = subprocess.run([IMAGES, "size", r["output_path"]], capture_output=True, text=True, check=True)
            self.assertEqual(size.stdout.split(), ["16", "12", str(ch)], name)
        p = self.mpibatch(*args, np=3)
        self.assertEqual(p.returncode, 4)
        self.assertEqual((self.status(store)["computed"], self.status(store)["cached"]), (0, 3))
        p = self.mpibatch("run", "image_resize", "--param", "input=" + self.path("nope"), "--param",
                          "output=" + dst, "--param", "width=16", "--param", "height=12")
        self.assertEqual(p.returncode, 2)
        self.assertIn("nope: not a folder", p.stderr)

    def test_clear_failed_then_a_job_then_everything(self):
        store = self.path("c.h5")
        self.mpibatch("run", "sleep", "--grid", "seconds=-1,0,0.001,-2", "--store", store, "--progress", "none")
        self.mpibatch("run", "pi", "--grid", "row=0..4", "--param", "order=1", "--store", store, "--progress", "none",
                      check=0)
        self.assertIn("would remove 2 results", self.mpibatch("clear", store, "--failed", "--dry-run", check=0).stderr)
        self.assertEqual(len(self.mpibatch("failed", store, check=4).stdout.splitlines()), 2)
        self.assertIn("removed 2 results", self.mpibatch("clear", store, "--failed", check=0).stderr)
        self.assertEqual(self.mpibatch("failed", store, check=0).stdout, "")
        self.assertIn("removed 2 results", self.mpibatch("clear", store, "--job", "sleep", check=0).stderr)
        # pi's results are untouched: a rerun computes nothing; sleep's run everything again.
        p = self.mpibatch("run", "pi", "--grid", "row=0..4", "--param", "order=1", "--store", store, check=0)
        self.assertIn("0 computed", p.stderr)
        self.assertIn("removed 5 results", self.mpibatch("clear", store, check=0).stderr)
        p = self.mpibatch("run", "pi", "--grid", "row=0..4", "--param", "order=1", "--store", store, check=0)
        self.assertIn("5 computed", p.stderr)
        self.assertIn("sound", self.mpibatch("verify", store, check=0).stdout)

    def test_progress_is_a_bar_in_a_terminal_and_lines_in_a_file(self):
        store = self.path("bar.h5")
        run = "mpirun -n 3 --oversubscribe %s run sleep --grid seconds=0.01..0.3:0.01 --store %s" % (MPIBATCH, store)
        # script(1) runs mpirun on a pseudo-terminal, as a person's shell would.
        # Bytes, not text: text mode would turn the bar's \r into \n.
        p = subprocess.run(["script", "-qfec", run, "/dev/null"], env=ENV, capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn(b"\rsleep [", p.stdout, "a bar redrawn in place")
        self.assertNotIn(b"mpibatch sleep: running", p.stdout)
        p = self.mpibatch("run", "sleep", "--grid", "seconds=0.01..0.05:0.01", "--store", self.path("log.h5"), np=3)
        self.assertIn("mpibatch sleep: finished 5/5 done", p.stderr, "plain lines when not a terminal")
        self.assertNotIn("\r", p.stderr)

    def test_progress_knows_the_total_from_the_check_pass(self):
        # The rows are counted when they are checked, before the run: log lines
        # show "done/total" and a percent from the first one. Before 5,000 are
        # done the master has read at most 5,000 + 8,192 ahead + a 4,096 chunk
        # + what is in flight: not the last row.
        p = self.mpibatch("run", "pi", "--grid", "row=0..19999", "--param", "order=1", "--batch", "100",
                          "--progress", "log", "--store", self.path("total.h5"), np=2)
        early = [int(m.group(1)) for m in re.finditer(r"running (\d+)/20000 done", p.stderr)]
        self.assertTrue([d for d in early if d < 5000], p.stderr)
        self.assertNotIn("20000+", p.stderr)

    def test_verify_compact_and_damage(self):
        store = self.path("v.h5")
        self.mpibatch("run", "pi", "--grid", "row=0..9", "--param", "order=2", "--store", store,
                      "--progress", "none", check=0)
        self.assertIn("sound", self.mpibatch("verify", store, check=0).stdout)
        self.mpibatch("compact", store, check=0)
        tables = [t for t in os.listdir(store + ".d") if t.endswith(".h5")]
        self.assertEqual(len(tables), 1, "compacted: one table")
        self.assertIn("sound", self.mpibatch("verify", store, check=0).stdout)
        with open(store, "r+b") as f:  # break the view's superblock: verify names it
            f.write(b"\0" * 64)
        p = self.mpibatch("verify", store)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("DAMAGED " + store, p.stdout)
        self.mpibatch("run", "pi", "--grid", "row=0..9", "--param", "order=2", "--store", store,
                      "--progress", "none", check=0)  # a writer writes the view anew
        self.assertIn("sound", self.mpibatch("verify", store, check=0).stdout)
        table = os.path.join(store + ".d", tables[0])
        with open(table, "r+b") as f:  # break the table's superblock
            f.write(b"\0" * 64)
        p = self.mpibatch("verify", store)
        self.assertEqual(p.returncode, 1)
        self.assertIn(tables[0], p.stdout + p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
