"""Runs docs/STORE.md's python blocks on the store its shell block makes (tools/ on PYTHONPATH)."""
import os
import re
import subprocess
import sys
import tempfile

mpibatch, doc = sys.argv[1], sys.argv[2]
text = open(doc).read()
blocks = re.findall(r"```python\n(.*?)```", text, re.S)
assert len(blocks) == 2, "the h5py block and the DataFrame block"
tools = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(doc))), "tools")
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
with tempfile.TemporaryDirectory() as tmp:
    subprocess.run(["mpirun", "-n", "3", "--oversubscribe", mpibatch, "run", "pi", "--grid", "row=0..99",
                    "--param", "order=5", "--store", "pi.h5", "--progress", "none"], cwd=tmp, env=env, check=True)
    subprocess.run(["h5ls", "-r", "pi.h5"], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["h5dump", "-d", "/jobs/pi/v1/results/value", "pi.h5"], cwd=tmp, check=True,
                   stdout=subprocess.DEVNULL)
    for code in blocks:
        subprocess.run([sys.executable, "-c", code], cwd=tmp, check=True, env=dict(env, PYTHONPATH=tools))
print("docs/STORE.md example: ok")
