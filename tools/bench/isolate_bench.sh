#!/usr/bin/env bash
# What --isolate costs: the mpibatch command under mpirun (3 ranks: 2 workers), timed from the
# shell, with and without --isolate, on trivial tasks (sqrt) with automatic batches (the cost a
# task) and with one task a batch (the cost a batch: a pipe round trip to the compute process),
# and on a trivial python function (each compute process imports the module once). Best of
# REPEATS runs each.
# Usage: tools/bench/isolate_bench.sh [TASKS] [REPEATS]   (default 200000, 3)
set -euo pipefail
source "$(dirname "$0")/bench_setup.sh" isolate
tasks=${1:-200000}
repeats=${2:-3}
m=$PWD/build/tools/mpibatch
printf 'def f(x: int) -> int:\n    return x + 1\n' > "$dir/trivial.py"

# Best wall time of the command over $repeats runs, each on a new store.
best() {
  local b=""
  for ((r = 0; r < repeats; r++)); do
    rm -rf "$dir"/s.h5 "$dir"/s.h5.d
    local s e
    s=$(date +%s.%N)
    (cd "$dir" && mpirun -n 3 --oversubscribe "$m" run "$@" --store s.h5 --progress none \
      > /dev/null 2>&1)
    e=$(date +%s.%N)
    local t
    t=$(echo "$e - $s" | bc -l)
    if [[ -z "$b" ]] || (($(echo "$t < $b" | bc -l))); then b=$t; fi
  done
  echo "$b"
}

echo "| workload | tasks | plain | --isolate | cost |"
echo "| --- | --- | --- | --- | --- |"
row() {  # label, tasks, what the cost is per (task or batch), run arguments...
  local label=$1 n=$2 per=$3
  shift 3
  local plain iso
  plain=$(best "$@")
  iso=$(best "$@" --isolate)
  printf "| %s | %s | %.2f s | %.2f s | %.1f µs a %s |\n" "$label" "$n" "$plain" "$iso" \
    "$(echo "($iso - $plain) * 1000000 / $n" | bc -l)" "$per"
}
row "sqrt, automatic batches" "$tasks" task sqrt --grid "x=1..$tasks"
small=$((tasks / 10))
row "sqrt, --batch 1" "$small" batch sqrt --grid "x=1..$small" --batch 1
row "python, automatic batches" "$tasks" task python --function trivial:f --grid "x=1..$tasks"
