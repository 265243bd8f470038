"""An mpibatch store's results as plain columns or a pandas DataFrame, read with h5py alone.

    from mpibatch_h5 import dataframe      # this file: tools/mpibatch_h5.py
    df = dataframe("sim.h5")                # params, results, status, error: a row per result

h5py reads every column natively; what this adds is what a DataFrame wants: strings as str
(h5py gives bytes), status as its label ("ok", "failed", "missing"), the key as its hex text
(the compound {hi, lo} breaks pandas' repr), and the job's columns only (not the runs, nor a C++
job's result archive bytes, whose length differs). Rows are in the order stored; sort by a param.
"""
import h5py
import numpy as np


def _group(f, job, version):
    jobs = f["jobs"]
    names = list(jobs) if job is None else [job]
    if len(names) != 1 or names[0] not in jobs:
        raise KeyError("%s holds jobs %s: name one" % (f.filename, ", ".join(sorted(jobs))))
    versions = sorted(int(v[1:]) for v in jobs[names[0]])
    v = versions[-1] if version is None else version
    if v not in versions:
        raise KeyError("job %s has versions %s" % (names[0], versions))
    return jobs[names[0]]["v%d" % v]


def columns(path, job=None, version=None):
    """{name: numpy array} of job's params, results, status, error and key (the newest version
    unless given; job may be left out when the store holds one)."""
    with h5py.File(path, "r") as f:
        g = _group(f, job, version)
        out = {}
        for part in ("params", "results"):
            for name, d in g[part].items():
                out[name] = d.asstr()[:] if h5py.check_string_dtype(d.dtype) else d[:]
        labels = {v: k for k, v in h5py.check_enum_dtype(g["status"].dtype).items()}
        out["status"] = np.array([labels[s] for s in g["status"][:]], dtype=object)
        out["error"] = g["error"].asstr()[:] if "error" in g else np.full(len(out["status"]), "", dtype=object)
        key = g["key"][:]
        out["key"] = np.array(["%016x%016x" % (hi, lo) for hi, lo in zip(key["hi"], key["lo"])], dtype=object)
        return out


def dataframe(path, job=None, version=None):
    """columns() as a pandas DataFrame."""
    import pandas as pd
    return pd.DataFrame(columns(path, job, version))
