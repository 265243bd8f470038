#!/usr/bin/env bash
# Builds mpibatch and runs the demo. Until the engine lands (issue 3) the demo
# exercises the store: it writes a store of results, reads it back with h5py,
# and shows its layout with h5ls.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cmake -S . -B build -DMPIBATCH_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)" --target store_fixture >/dev/null
demo=$(mktemp -d)
trap 'rm -rf "$demo"' EXIT
echo "== writing 10000 task results to $demo/demo.h5 (commit, segments, compaction)"
build/tests/store_fixture "$demo/demo.h5" 10000
echo "== h5ls -r $demo/demo.h5"
h5ls -r "$demo/demo.h5"
echo "== the numeric results in plain h5py"
/usr/bin/python3 - "$demo/demo.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    g = f["jobs/demo/v1"]
    ok = g["status"][:] == 0
    print("records:", len(ok), " ok:", int(ok.sum()), " failed:", int((~ok).sum()))
    print("first results/half:", g["results/half"][:5])
    print("run 1:", dict(f["runs/1"].attrs))
PY
