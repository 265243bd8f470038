"""Progress output end to end: timestamped log lines (Slurm output files) with a start line
and a summary, a rerun served from the store, and the bar in a real pseudo-terminal as wide
as the terminal, following a resize.

Usage: progress_cli_test.py MPIBATCH_BINARY   (run by ctest; needs mpirun on PATH)
"""
import datetime
import fcntl
import os
import pty
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import time
import unittest

MPIBATCH = sys.argv.pop(1)
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
ENV.pop("COLUMNS", None)  # the width must come from the terminal
TS = r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d)"
ESCAPE = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def launcher(np):
    return ["mpirun", "-n", str(np), "--oversubscribe"] if np else []


def set_width(fd, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))


def parse_time(ts):
    return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S%z")


class ProgressCli(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="mpibatch-progress-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_log(self, store, np):
        cmd = launcher(np) + [MPIBATCH, "run", "sqrt", "--grid", "x=1..2000", "--store", store,
                              "--progress", "log"]
        p = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        # The command's own last word ("mpibatch run sqrt: finished: ...") is not progress.
        lines = [line for line in p.stderr.splitlines() if not line.startswith("mpibatch run ")]
        for line in lines:
            self.assertRegex(line, "^" + TS + " mpibatch sqrt: ", "every line is timestamped")
        return lines

    def check_log(self, np):
        store = os.path.join(self.dir, "S%d.h5" % np)
        ranks = max(np, 1)
        lines = self.run_log(store, np)
        host = socket.gethostname()
        self.assertRegex(lines[0], r" mpibatch sqrt: starting 2000 tasks on %d ranks? on 1 host \(%s\); "
                         r"store %s, 0 results already in it$" % (ranks, re.escape(host), re.escape(store)))
        running = [re.match(TS + r" mpibatch sqrt: running (\d+)/2000 done \((\d+\.\d)%\): (\d+) computed, "
                            r"0 cached, 0 failed, \d+ in flight; (\? tasks/s|[\d.]+ (tasks/s|s/task)); "
                            r"elapsed \d+:\d\d:\d\d; ETA (\?|\d+:\d\d:\d\d)$", line) for line in lines[1:-1]]
        self.assertTrue(running and all(running), lines)
        done = [int(m.group(2)) for m in running]
        self.assertEqual(done, sorted(done))
        # At most one line a 5 % step, unless 10 s passed (the first time-based line).
        for a, b in zip(running, running[1:]):
            if (parse_time(b.group(1)) - parse_time(a.group(1))).total_seconds() < 9:
                self.assertLess(int(a.group(2)) * 20 // 2000, int(b.group(2)) * 20 // 2000, lines)
        self.assertRegex(lines[-1], r" mpibatch sqrt: finished 2000/2000 done \(100\.0%\): 2000 computed, "
                         r"0 cached, 0 failed; wall \d+:\d\d:\d\d; mean [\d.]+ tasks/s$")

        # Again: everything from the store, and no meaningless rate.
        lines = self.run_log(store, np)
        self.assertIn("store %s, 2000 results already in it" % store, lines[0])
        self.assertRegex(lines[-1], r" mpibatch sqrt: finished 2000/2000 done \(100\.0%\): 0 computed, "
                         r"2000 cached, 0 failed; all 2000 from the store; wall \d+:\d\d:\d\d$")
        self.assertNotIn("0 tasks/s", "\n".join(lines))

    def test_log_lines_one_rank(self):
        self.check_log(0)

    def test_log_lines_under_mpirun(self):
        self.check_log(2)

    def run_in_pty(self, cmd, cols, resize_to=None):
        """Runs cmd with its output on a pseudo-terminal cols wide; returns the rendered
        segments (between \\r and \\n, escapes removed) before and after a resize to
        resize_to, done as soon as the first bar is seen."""
        master, slave = pty.openpty()
        set_width(slave, cols)
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, env=ENV,
                             start_new_session=True)
        os.close(slave)
        before, after, out = b"", b"", b""
        resized = resize_to is None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if not ready:
                if p.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            out += chunk
            if not resized and b"\r" in out and b" [" in out:
                set_width(master, resize_to)
                resized = True
                before, out = out, b""
        os.close(master)
        self.assertEqual(p.wait(timeout=60), 0, out)
        if resize_to is None:
            before, out = out, b""
        # The command's own last word (a plain line, not progress) is left out.
        split = lambda b: [s for s in (ESCAPE.sub(b"", s).decode() for s in re.split(rb"[\r\n]", b))
                           if s.strip() and not s.startswith("mpibatch run ")]
        return split(before), split(out)

    def check_bar_width(self, np, cols):
        store = os.path.join(self.dir, "bar%d_%d.h5" % (np, cols))
        segs, _ = self.run_in_pty(launcher(np) + [MPIBATCH, "run", "sqrt", "--grid", "x=1..2000",
                                                  "--store", store], cols)
        bars = [s for s in segs if s.startswith("sqrt ")]
        self.assertTrue(bars, segs)
        for s in segs:
            self.assertLessEqual(len(s), cols, "no line wider than the terminal: %r" % s)
        # The bar fills the line, one column short of the terminal's (no terminal wraps it).
        self.assertEqual(max(len(s) for s in bars), cols - 1, bars)
        self.assertIn("100.0% 2000/2000", bars[-1])
        self.assertNotIn("mpibatch sqrt: running", "\n".join(segs))

    def test_bar_fits_60_columns(self):
        self.check_bar_width(0, 60)

    def test_bar_fits_150_columns_under_mpirun(self):
        self.check_bar_width(2, 150)

    def test_bar_follows_a_resize(self):
        # About 4 s of sleeps: the terminal shrinks right after the first bar is drawn.
        store = os.path.join(self.dir, "resize.h5")
        before, after = self.run_in_pty([MPIBATCH, "run", "sleep", "--grid", "seconds=0.001..0.04:0.0002",
                                         "--store", store], 150, resize_to=60)
        self.assertTrue(before and after, (before, after))
        self.assertEqual(max(len(s) for s in before), 149, before)
        self.assertTrue(before[0].startswith("sleep ["), before)
        self.assertLessEqual(len(after[-1]), 60, after)
        self.assertTrue(after[-1].startswith("sleep"), after)
        total = re.search(r"(\d+)/(\d+)", after[-1])
        self.assertTrue(total and total.group(1) == total.group(2), after[-1])

        # All from the store: the final bar says so, with no rate.
        segs, _ = self.run_in_pty([MPIBATCH, "run", "sleep", "--grid", "seconds=0.001..0.04:0.0002",
                                   "--store", store], 100)
        self.assertIn("all %s from the store" % total.group(2), segs[-1])
        self.assertNotIn("tasks/s", segs[-1])


if __name__ == "__main__":
    unittest.main(verbosity=2)
