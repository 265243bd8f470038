"""mpibatch report: the report of a small real run, checked as a file (self-contained, escaped,
bounded), against `status --json`, and rendered in headless Chromium.

Usage: report_test.py MPIBATCH_BINARY   (run by ctest; needs mpirun, chromium and python3-pil,
which tools/setup.sh installs)
"""
import html
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

MPIBATCH = sys.argv.pop(1)
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
# Two tasks fail, with a message that HTML must escape.
CMD = "sleep 0.0{i}; test {i} -ne 17 -a {i} -ne 31 || { echo '<b>&\"x</b>' >&2; exit 3; }"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Report(html.parser.HTMLParser):
    """The parts of a report the tests read: summary rows, lanes, embedded figures, links."""

    def __init__(self, text):
        super().__init__()
        self.summary, self.lanes, self.urls, self.script_srcs = {}, [], [], []
        self.figures, self._in_figures = "", False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-key" in a:
            self.summary[a["data-key"]] = json.loads(a["data-value"])
        if tag == "g" and a.get("class") == "lane":
            self.lanes.append((int(a["data-rank"]), int(a["data-tasks"])))
        for k in ("src", "href", "xlink:href", "action"):
            if k in a:
                self.urls.append(a[k])
        if tag == "script":
            if "src" in a:
                self.script_srcs.append(a["src"])
            self._in_figures = a.get("id") == "mpibatch-status"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_figures = False

    def handle_data(self, data):
        if self._in_figures:
            self.figures += data


class ReportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="mpibatch-report-")
        cls.store = os.path.join(cls.dir, "s.h5")
        # Run 1: 40 tasks on 2 workers, 2 of them failing; run 2 adds 10 tasks to the
        # same store, so its report has cached tasks too.
        for last in (49, 59):
            p = cls.run_mpibatch("run", "exec", "--shell", "--cmd", CMD, "--grid", "i=10..%d" % last,
                                 "--store", cls.store, "--progress", "none", np=3)
            assert p.returncode == 4, (p.returncode, p.stderr)  # 4: tasks failed

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    @staticmethod
    def run_mpibatch(*args, np=None):
        cmd = [MPIBATCH, *args]
        if np is not None:
            cmd = ["mpirun", "-n", str(np), "--oversubscribe", *cmd]
        return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)

    def mpibatch(self, *args, check=0):
        p = self.run_mpibatch(*args)
        self.assertEqual(p.returncode, check, "%s\nstdout: %s\nstderr: %s" % (args, p.stdout, p.stderr))
        return p

    def report(self, *args):
        out = os.path.join(self.dir, "report-%s.html" % "-".join(args or ("latest",)))
        self.mpibatch("report", self.store, "-o", out, *args)
        with open(out, encoding="utf-8") as f:
            text = f.read()
        return out, text, Report(text)

    def test_self_contained_escaped_and_small(self):
        out, text, r = self.report()
        self.assertLess(os.path.getsize(out), 1 << 20)
        self.assertEqual(r.script_srcs, [])
        self.assertEqual([u for u in r.urls if not u.startswith("#")], [], "loads nothing")
        self.assertNotRegex(text, r"(?i)https?://|@import|url\(|<link|<iframe|<img")
        # A message with markup is shown as text, never as markup.
        self.assertNotIn("<b>&", text)
        self.assertIn("&lt;b&gt;&amp;&quot;x&lt;/b&gt;", text)
        # No temporary file is left next to the report.
        self.assertEqual([f for f in os.listdir(self.dir) if ".tmp" in f], [])

    def test_summary_is_status_json(self):
        for args, run in (((), 2), (("--run", "1"), 1)):
            _, text, r = self.report(*args)
            status = json.loads(self.mpibatch("status", self.store, "--json", *args).stdout)
            self.assertEqual(status["run"], run)
            shared = set(r.summary) & set(status)
            self.assertGreaterEqual(shared, {"run", "state", "total", "done", "cached", "computed", "failed",
                                             "pending", "rate", "elapsed", "start_time", "end_time", "ranks",
                                             "hosts", "exit_status", "slurm_jobs"})
            for k in shared:
                self.assertEqual(r.summary[k], status[k], k)
            # The embedded figures are status --json's, plus the report's own.
            figures = json.loads(r.figures)
            for k, v in status.items():
                if k != "seconds_since_last_commit":
                    self.assertEqual(figures[k], v, k)
            self.assertEqual(figures["efficiency"], r.summary["efficiency"])
            # Run 1: 38 ok and 2 failed; run 2: the 38 from the store, 10 new, 2 failed again.
            self.assertEqual((status["total"], status["cached"], status["computed"], status["failed"]),
                             (40, 0, 38, 2) if run == 1 else (50, 38, 10, 2))
            # One lane per worker (mpirun -n 3: ranks 1 and 2; rank 0 dispatches), holding
            # every task this run computed.
            self.assertEqual(sorted(rank for rank, _ in r.lanes), [1, 2])
            if run == 2:
                self.assertEqual(sum(n for _, n in r.lanes), status["computed"] + status["failed"])
                self.assertNotIn("records-note", text)
            else:  # run 2's retries replaced run 1's failed records, and the report says so
                self.assertEqual(sum(n for _, n in r.lanes), status["computed"])
                self.assertIn("records-note", text)
            self.assertEqual(r.summary["workers"], 2)
            self.assertGreater(r.summary["efficiency"], 0)
            self.assertLessEqual(r.summary["efficiency"], 1.0)
            self.assertAlmostEqual(r.summary["efficiency"],
                                   r.summary["busy_seconds"] / (2 * status["elapsed"]), places=9)

    def test_slowest_and_failed_tasks_with_params(self):
        _, text, _ = self.report("--run", "2", "--top", "5")
        slowest = text[text.index('id="slowest"'):text.index('id="failed"')]
        self.assertEqual(slowest.count("<tr>") - 1, 5)
        self.assertIn("i=5", slowest)  # run 2 computed i=50..59 (sleep 0.050 to 0.059)
        self.assertNotIn("i=4", slowest)
        failed = text[text.index('id="failed"'):]
        self.assertIn("i=17", failed)
        self.assertIn("i=31", failed)
        self.assertIn("2 failed in this run", failed)
        self.assertEqual(failed.count("exit code 3"), 3, failed)  # messages by count, then each task

    def test_errors_are_one_line_with_the_statuses_of_the_other_verbs(self):
        missing = os.path.join(self.dir, "missing.h5")
        st = self.run_mpibatch("status", missing)
        rep = self.run_mpibatch("report", missing, "-o", os.path.join(self.dir, "m.html"))
        self.assertNotEqual(st.returncode, 0)
        self.assertEqual((rep.returncode, rep.stderr), (st.returncode, st.stderr))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "m.html")))
        # The store itself, or a file in its sidecar, is never the output.
        before = os.stat(self.store)
        for out in (self.store, os.path.join(self.dir, ".", "s.h5"), self.store + ".d/r.html"):
            p = self.mpibatch("report", self.store, "-o", out, check=2)
            self.assertRegex(p.stderr, r"^mpibatch: -o .* the store .*choose another output\n$")
        after = os.stat(self.store)
        self.assertEqual((before.st_size, before.st_mtime_ns), (after.st_size, after.st_mtime_ns))
        self.assertFalse(os.path.exists(self.store + ".d/r.html"))
        p = self.mpibatch("report", self.store, "--run", "9", "-o", os.path.join(self.dir, "x.html"), check=2)
        self.assertIn("has no run 9", p.stderr)
        self.assertEqual(len(p.stderr.splitlines()), 1)
        p = self.mpibatch("report", self.store, check=2)  # -o is required
        self.assertIn("--output", p.stderr)
        # "-": standard output.
        self.assertTrue(self.mpibatch("report", self.store, "-o", "-").stdout.startswith("<!DOCTYPE html>"))

    def test_rendered_in_headless_chromium(self):
        if CHROMIUM is None:
            self.skipTest("chromium is not installed (tools/setup.sh installs it)")
        from PIL import Image  # python3-pil, which tools/setup.sh installs

        out, _, r = self.report()
        png = os.path.join(self.dir, "report.png")
        profile = tempfile.mkdtemp(prefix="chromium-", dir=self.dir)
        p = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                            "--force-device-scale-factor=1", "--user-data-dir=" + profile,
                            "--host-resolver-rules=MAP * ~NOTFOUND",  # no network
                            "--window-size=1200,1400", "--screenshot=" + png, "file://" + out],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        img = Image.open(png).convert("RGB")
        self.assertEqual(img.size, (1200, 1400))
        px = img.load()
        w, h = img.size
        # Not blank: many colours and a spread of brightness.
        colours = img.getcolors(maxcolors=1 << 20)
        self.assertGreater(len(colours), 50)
        grey = [sum(px[x, y]) / 3 for x in range(0, w, 7) for y in range(0, h, 7)]
        mean = sum(grey) / len(grey)
        self.assertGreater((sum((g - mean) ** 2 for g in grey) / len(grey)) ** 0.5, 10)
        # One lane per worker: down a column inside the timeline's plot (the body's 24 px
        # margin, then 110 px of labels), lanes are 24 px runs of lane colours (idle grey,
        # ok blue, failed red) that start 27 px apart; count the longest such sequence.
        lane_colours = {(0xEC, 0xEF, 0xF3), (0x1F, 0x6F, 0xB2), (0xD3, 0x2F, 0x2F)}
        for x in (24 + 110 + 3, 24 + 110 + 480, 24 + 110 + 956):
            starts, n = [], 0
            for y in range(h + 1):
                if y < h and px[x, y] in lane_colours:
                    n += 1
                    continue
                if 22 <= n <= 26:
                    starts.append(y - n)
                n = 0
            longest = chain = 0
            for i, y in enumerate(starts):
                chain = chain + 1 if i and y - starts[i - 1] == 27 else 1
                longest = max(longest, chain)
            self.assertEqual(longest, len(r.lanes), (x, starts))
        # Some bars were drawn: blue pixels in the timeline.
        self.assertTrue(any(c == (0x1F, 0x6F, 0xB2) for _, c in colours))

    def test_many_tasks_stay_small(self):
        store = os.path.join(self.dir, "big.h5")
        self.mpibatch("run", "sqrt", "--grid", "x=1..200000", "--store", store, "--progress", "none")
        out = os.path.join(self.dir, "big.html")
        self.mpibatch("report", store, "-o", out)
        self.assertLess(os.path.getsize(out), 2 << 20)
        with open(out, encoding="utf-8") as f:
            r = Report(f.read())
        self.assertEqual(r.summary["computed"], 200000)
        self.assertEqual(sum(n for _, n in r.lanes), 200000)


if __name__ == "__main__":
    unittest.main()
