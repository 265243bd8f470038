"""A store read with plain h5py calls: no mpibatch code involved. The store's file is a view
whose virtual datasets join the tables in its sidecar; a table gone missing reads as status
"missing" (-1), never as data."""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

N = 5000
fixture = sys.argv[1]
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "run.h5")
    subprocess.run([fixture, path, str(N)], check=True)
    tables = sorted(t for t in os.listdir(path + ".d") if t.endswith(".h5"))
    assert len(tables) >= 5, tables  # the base and a segment a thousand records
    with h5py.File(path, "r") as f:
        assert f.attrs["mpibatch_format"] == 6
        g = f["jobs/demo/v1"]
        assert g.attrs["name"] == "demo" and g.attrs["version"] == 1
        assert list(g.attrs["result_names"]) == ["n", "half", "even", "label"]
        status = g["status"][:]
        assert h5py.check_enum_dtype(g["status"].dtype) == {"ok": 0, "failed": 1, "missing": -1}
        assert g["status"].is_virtual
        ok = status == 0
        n = g["results/n"][:]
        half = g["results/half"][:]
        even = g["results/even"][:]
        assert n.dtype == np.int64 and half.dtype == np.float64
        assert even.dtype == np.bool_, "h5py reads our bool enum as numpy bool"
        assert g["results/half"].attrs["units"] == "m"
        labels = g["results/label"].asstr()[:]
        assert len(n) == N
        assert sorted(n[ok].tolist()) == [i for i in range(N) if i % 11 != 0]
        assert np.all(half[ok] == n[ok] / 2)
        assert np.all(even[ok] == (n[ok] % 2 == 0))
        assert all(labels[k] == "n%d" % n[k] for k in np.nonzero(ok)[0])
        assert np.all(np.isnan(half[~ok]))
        i = g["params/i"][:]
        assert sorted(i.tolist()) == list(range(N)), "every task's parameter, failed ones too"
        assert np.all(i[ok] == n[ok])
        errors = g["error"].asstr()[:]
        assert sorted(errors[~ok].tolist()) == sorted("boom %d \u00e9" % i for i in range(0, N, 11))
        keys = g["key"][:]
        assert keys.dtype.names == ("hi", "lo")
        key_list = keys.tolist()
        assert i.tolist() == list(range(N)), "rows are in the order stored (the fixture's)"
        run = f["runs/1"]
        assert run.attrs["state"] == "finished"
        assert run.attrs["command_line"] == "store_fixture %d" % N
        assert list(run.attrs["hosts"]) == ["node-a", "node-b"]
        assert run.attrs["slurm_job_id"] == "4242" and run.attrs["task_count"] == N
        assert run.attrs["slurm_nodelist"] == "node-[a-b]" and run.attrs["slurm_restart_count"] == 0
        tasks = run["tasks"][:]
        assert len(tasks) == N and set(tasks.tolist()) == set(key_list)
    # A segment deleted behind the store's back: its rows read as missing, not as data.
    segment = os.path.join(path + ".d", next(t for t in tables if not t.startswith("base-")))
    with h5py.File(segment, "r") as f:
        lost = len(f["jobs/demo/v1/key"])
        half = f["jobs/demo/v1/results/half"]
        assert half.fletcher32, "h5py checks each chunk's checksum"
        at = half.id.get_chunk_info(0).byte_offset
    assert lost > 0
    # A flipped byte in a chunk: h5py refuses the chunk rather than read a changed value.
    with open(segment, "r+b") as raw:
        raw.seek(at + 9)
        b = raw.read(1)
        raw.seek(at + 9)
        raw.write(bytes([b[0] ^ 0x5A]))
    with h5py.File(segment, "r") as f:
        try:
            f["jobs/demo/v1/results/half"][:]
            raise AssertionError("h5py read a damaged chunk")
        except OSError as e:
            assert "Fletcher32" in str(e), e
    os.remove(segment)
    with h5py.File(path, "r") as f:
        status = f["jobs/demo/v1/status"][:]
        assert len(status) == N and (status == -1).sum() == lost, ((status == -1).sum(), lost)
        assert np.isnan(f["jobs/demo/v1/start_time"][:][status == -1]).all()
print("h5py read %d records: ok" % N)
