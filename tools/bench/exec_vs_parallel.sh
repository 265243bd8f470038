#!/usr/bin/env bash
# exec farming `true`, `sleep 0.01` and a small Python script at 2 workers, against GNU
# Parallel -j2 --joblog.
# Commands are made distinct (mpibatch would run a repeated command once): `true N` and
# `sleep 0.0100N` (10 ms and a hair). Usage: tools/bench/exec_vs_parallel.sh [N]
# (default 2000 commands; needs tools/setup.sh --bench for GNU Parallel and bc)
set -euo pipefail
source "$(dirname "$0")/bench_setup.sh" exec
n=${1:-2000}
report() { printf '%-48s %10.1f commands/s\n' "$1" "$(echo "$2 / ($4 - $3)" | bc -l)"; }
for prog in true sleep; do
  if [[ $prog == true ]]; then template='true {i}'; arg='true {}'; else template='sleep 0.0100{i}'; arg='sleep 0.0100{}'; fi
  start=$(date +%s.%N)
  mpirun -n 3 --oversubscribe build/tools/mpibatch run exec --cmd "$template" --grid "i=1..$n" \
    --store "$dir/exec.h5" --progress none 2>/dev/null
  report "mpibatch run exec '$template' (2 workers)" "$n" "$start" "$(date +%s.%N)"
  # The run's own rate, without mpirun's start-up: what the store recorded.
  build/tools/mpibatch status "$dir/exec.h5" | grep '^rate' 
  rm -rf "$dir/exec.h5" "$dir/exec.h5.d"
  start=$(date +%s.%N)
  seq "$n" | parallel -j2 --joblog "$dir/joblog" "$arg"
  report "parallel -j2 --joblog '$arg'" "$n" "$start" "$(date +%s.%N)"
done
# A small real program: a Python script that prints its result as JSON, which mpibatch stores
# as columns (--json-result) and Parallel leaves in its output.
m=$(( n / 10 ))
cat > "$dir/fit.py" <<'PY'
import json, sys
i = int(sys.argv[1])
print(json.dumps({"loss": sum(k * k for k in range(1000 + i)) / 1e9}))
PY
start=$(date +%s.%N)
mpirun -n 3 --oversubscribe build/tools/mpibatch run exec --cmd "python3 $dir/fit.py {i}" \
  --grid "i=1..$m" --json-result loss --store "$dir/py.h5" --progress none 2>/dev/null
report "mpibatch run exec 'python3 fit.py {i}' --json-result" "$m" "$start" "$(date +%s.%N)"
start=$(date +%s.%N)
seq "$m" | parallel -j2 --joblog "$dir/joblog" "python3 $dir/fit.py {}" > /dev/null
report "parallel -j2 --joblog 'python3 fit.py {}'" "$m" "$start" "$(date +%s.%N)"
# The floor: posix_spawn + waitpid back to back, nothing else.
build/tools/bench/spawn_floor 500 true
build/tools/bench/spawn_floor 500 sleep 0.01
