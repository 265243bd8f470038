"""mpibatch under a real one-node Slurm (tools/slurm_local.sh start): submit, drain before the
time limit, resubmit until done, stop resubmitting without progress. Exit 77 (skipped) when
Slurm is not running here (not root, or not started).

Usage: slurm_test.py MPIBATCH_BINARY
Timing is Slurm's: limits are checked every 30 s and the warning comes 4-40 s early, so these
tests check the order of events and the store, never exact times.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

MPIBATCH = sys.argv.pop(1)
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def slurm_up():
    try:
        return subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                              timeout=10).stdout.strip() in ("idle", "mixed", "allocated")
    except (OSError, subprocess.SubprocessError):
        return False


class Slurm(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mpibatch-slurm-", dir="/tmp")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def mpibatch(self, *args, check=None, env=ENV):
        p = subprocess.run([MPIBATCH, *args], env=env, capture_output=True, text=True, timeout=600)
        if check is not None:
            self.assertEqual(p.returncode, check, "%s\n%s\n%s" % (args, p.stdout, p.stderr))
        return p

    def wait_for_store(self, store, timeout):
        """Until no job of this store is queued or running; returns the runs' states."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            q = subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True)
            if q.returncode == 0 and not q.stdout.strip():  # a busy controller's time-out is not "empty"
                break
            time.sleep(2)
        else:
            self.fail("jobs still queued after %d s" % timeout)
        return self.runs(store)

    def runs(self, store):
        """`mpibatch status --run N --json` of every run, in order."""
        out = []
        run = 1
        while True:
            p = self.mpibatch("status", store, "--run", str(run), "--json")
            if p.returncode != 0:
                return out
            out.append(json.loads(p.stdout))
            run += 1

    def test_pi_under_srun_matches_a_local_mpirun_run(self):
        store, local = self.path("pi.h5"), self.path("local.h5")
        p = self.mpibatch("submit", "pi", "--grid", "row=0..39", "--param", "order=5", "--ntasks", "2",
                          "--time", "2", "--store", store, check=0)
        self.assertRegex(p.stdout.strip(), r"^\d+$", "submit prints the job id")
        self.assertTrue(os.path.exists(store + ".sbatch"), "the script is kept next to the store")
        runs = self.wait_for_store(store, 120)
        self.assertEqual([r["state"] for r in runs], ["finished"])
        self.assertEqual(runs[0]["slurm_job_id"], p.stdout.strip())
        self.assertTrue(runs[0]["slurm_nodelist"], "the node list is recorded")
        self.assertEqual(runs[0]["ranks"], 2)
        subprocess.run(["mpirun", "-n", "2", "--oversubscribe", MPIBATCH, "run", "pi", "--grid", "row=0..39",
                        "--param", "order=5", "--store", local, "--progress", "none"], env=ENV, check=True)
        strip = lambda out: [line for line in out.splitlines()]
        self.assertEqual(strip(self.mpibatch("export", store, check=0).stdout),
                         strip(self.mpibatch("export", local, check=0).stdout))

    def test_the_template_under_mpirun_inside_sbatch(self):
        store = self.path("m.h5")
        self.mpibatch("submit", "sqrt", "--grid", "x=1..20", "--ntasks", "2", "--time", "2", "--launcher", "mpirun",
                      "--store", store, check=0)
        runs = self.wait_for_store(store, 120)
        self.assertEqual([r["state"] for r in runs], ["finished"])
        self.assertEqual(runs[0]["done"], 20)

    def test_dry_run_submits_nothing_and_no_sbatch_is_a_clear_error(self):
        p = self.mpibatch("submit", "pi", "--grid", "row=0..3", "--param", "order=1", "--ntasks", "2", "--time", "2",
                          "--chain", "3", "--dry-run", "--store", self.path("d.h5"), check=0)
        self.assertIn("#SBATCH --signal=B:USR1@90", p.stdout)
        self.assertIn("srun --mpi=pmix", p.stdout)
        self.assertFalse(os.path.exists(self.path("d.h5.sbatch")))
        env = dict(ENV, PATH="/nonexistent")
        p = self.mpibatch("submit", "pi", "--grid", "row=0..3", "--param", "order=1", "--store", self.path("n.h5"),
                          env=env)
        self.assertEqual(p.returncode, 2)
        self.assertIn("sbatch is not on the PATH", p.stderr)

    def test_drains_before_each_time_limit_resubmits_and_completes_every_task_once(self):
        store, side = self.path("drain.h5"), self.path("ran.txt")
        # 150 one-second tasks for one worker: about 2.5 times a one-minute limit.
        self.mpibatch("submit", "exec", "--shell", "--cmd", "sleep 1; echo {i} >> " + side, "--grid", "i=1..150",
                      "--ntasks", "2", "--time", "1", "--warn", "30", "--chain", "8", "--store", store, check=0)
        runs = self.wait_for_store(store, 540)
        states = [r["state"] for r in runs]
        self.assertGreaterEqual(len(runs), 3, states)
        self.assertEqual(states[-1], "finished", states)
        self.assertEqual(set(states[:-1]), {"stopped"}, "every run before the last drained: %s" % states)
        self.assertEqual(len({r["slurm_job_id"] for r in runs}), len(runs), "one Slurm job a run")
        self.assertEqual(runs[-1]["done"], 150)
        chain = [j["slurm_job_id"] for j in runs[-1]["slurm_jobs"]]
        self.assertEqual(chain, [r["slurm_job_id"] for r in runs], "status shows the chain of jobs")
        with open(side) as f:
            ran = [int(x) for x in f.read().split()]
        self.assertEqual(sorted(ran), list(range(1, 151)), "every task ran exactly once")
        # A drained link that resubmitted is not a failure to Slurm: COMPLETED, exit 0.
        for job in chain:
            info = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
            if info:  # Slurm forgets finished jobs after MinJobAge
                self.assertIn("JobState=COMPLETED", info, job)
                self.assertIn("ExitCode=0:0", info, job)

    def test_a_worker_that_dies_is_resubmitted_and_the_chain_completes(self):
        store, side, mark = self.path("dies.h5"), self.path("ran.txt"), self.path("died")
        # Task 30 kills its own worker rank once ($PPID: the rank that spawned the shell).
        cmd = ("if [ {i} = 30 ] && [ ! -e %s ]; then touch %s; kill -9 $PPID; sleep 5; fi; "
               "echo {i} >> %s; sleep 0.05" % (mark, mark, side))
        self.mpibatch("submit", "exec", "--shell", "--cmd", cmd, "--grid", "i=1..60", "--ntasks", "2",
                      "--time", "2", "--chain", "3", "--store", store, check=0)
        runs = self.wait_for_store(store, 240)
        self.assertTrue(os.path.exists(mark), "the worker was killed")
        self.assertGreaterEqual(len(runs), 2, [r["state"] for r in runs])
        self.assertEqual(runs[-1]["state"], "finished")
        self.assertEqual(runs[-1]["done"], 60)
        outs = "".join(open(os.path.join(self.dir, f)).read() for f in os.listdir(self.dir) if ".slurm-" in f)
        self.assertIn("a rank died or was killed", outs)
        with open(side) as f:
            ran = [int(x) for x in f.read().split()]
        self.assertEqual(set(ran), set(range(1, 61)), "every task ran")

    def test_tasks_that_crash_their_worker_are_quarantined_and_the_chain_finishes(self):
        store, side = self.path("poison.h5"), self.path("calls.txt")
        with open(self.path("poison.py"), "w") as f:
            f.write("import ctypes, os\n"
                    "def f(x: int) -> int:\n"
                    "    with open(%r, 'a') as log: log.write('%%d\\n' %% x)\n"
                    "    if x == 3: ctypes.string_at(0)\n"
                    "    if x == 5: os.abort()\n"
                    "    return x * x\n" % side)
        env = dict(ENV, PYTHONPATH=self.dir)
        # Four crashes (two a task) and the link that finishes: a chain of 6 is enough.
        self.mpibatch("submit", "python", "--function", "poison:f", "--grid", "x=1..20", "--ntasks", "2",
                      "--time", "2", "--chain", "6", "--store", store, check=0, env=env)
        runs = self.wait_for_store(store, 300)
        states = [(r["state"], r["exit_status"]) for r in runs]
        self.assertEqual(len(runs), 5, states)
        self.assertEqual(states[-1], ("finished", 4), states)
        self.assertEqual(runs[-1]["done"], 20)
        failed = [json.loads(l) for l in self.mpibatch("failed", "--json", store, check=4).stdout.splitlines()]
        self.assertEqual(sorted((l["params"]["x"], l["crashed"]) for l in failed), [(3, True), (5, True)])
        self.assertIn("SIGSEGV", [l for l in failed if l["params"]["x"] == 3][0]["error"])
        self.assertIn("SIGABRT", [l for l in failed if l["params"]["x"] == 5][0]["error"])
        with open(side) as f:
            calls = [int(x) for x in f.read().split()]
        self.assertEqual((calls.count(3), calls.count(5)), (2, 2), calls)
        outs = "".join(open(os.path.join(self.dir, f)).read() for f in os.listdir(self.dir) if ".slurm-" in f)
        self.assertIn("crashes recorded in this job; resubmitted", outs)

    def test_no_progress_stops_resubmitting(self):
        store = self.path("stuck.h5")
        # Each task outlasts the job: nothing can finish.
        self.mpibatch("submit", "exec", "--cmd", "sleep 100{i}", "--grid", "i=1..2", "--ntasks", "2", "--time", "1",
                      "--warn", "30", "--chain", "3", "--store", store, check=0)
        runs = self.wait_for_store(store, 180)
        self.assertEqual([r["state"] for r in runs], ["stopped"])
        outs = [open(os.path.join(self.dir, f)).read() for f in os.listdir(self.dir) if ".slurm-" in f]
        self.assertTrue(any("not resubmitting" in o for o in outs), outs)
        # Every task failing is exit 4, not "stopped": nothing to resubmit either.
        store = self.path("fails.h5")
        self.mpibatch("submit", "exec", "--cmd", "false {i}", "--grid", "i=1..3", "--ntasks", "2", "--time", "1", "--warn", "30",
                      "--chain", "3", "--store", store, check=0)
        runs = self.wait_for_store(store, 120)
        self.assertEqual([(r["state"], r["exit_status"], r["failed"]) for r in runs], [("finished", 4, 3)])


if __name__ == "__main__":
    if not slurm_up():
        print("slurm_test: no Slurm running here (tools/slurm_local.sh start needs root): skipped")
        sys.exit(77)
    unittest.main(verbosity=2)
