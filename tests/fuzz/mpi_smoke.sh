#!/usr/bin/env bash
# The mpibatch command under mpirun at NP ranks, in the sanitizer build:
# the engine's master and workers, the messages between them, the store and
# the verbs, all under ASan and UBSan (ctest sanitize_mpi_np1..4; label
# sanitize_mpi). engine_test cannot be built by clang 14 (tools/sanitize.sh
# says why), so this drives the same engine through the command.
# Usage: mpi_smoke.sh MPIBATCH_EXE NP
set -euo pipefail
exe=$1 np=$2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
run() { mpirun -n "$np" --oversubscribe "$exe" run "$@" --progress none; }
expect() {  # expect STATUS COMMAND...: the command exits with STATUS
  local want=$1 got=0
  shift
  "$@" > /dev/null || got=$?
  if [[ $got -ne $want ]]; then
    echo "mpi_smoke np$np: '$*' exited $got, not $want" >&2
    exit 1
  fi
}

# Computed, then every task from the store; export lists each once.
run sqrt --grid x=1..3000 --store s.h5
run sqrt --grid x=1..3000 --store s.h5 --batch 7
[[ $("$exe" export s.h5 | wc -l) -eq 3001 ]]
"$exe" status s.h5 --json > /dev/null
"$exe" verify s.h5 > /dev/null

# A task file with failures and retries (exit 4), failed, clear, compact.
printf 'x,tag\n' > t.csv
for i in $(seq 0 39); do printf '%d,"t,%d"\n' "$i" "$i"; done >> t.csv
expect 4 run exec --cmd "test {x} -lt 30" --tasks t.csv --retries 1 --store e.h5
expect 4 "$exe" failed e.h5
"$exe" clear e.h5 --failed -y > /dev/null
expect 4 run exec --cmd "test {x} -lt 30" --tasks t.csv --store e.h5 --halt fail=3
"$exe" compact e.h5 > /dev/null
"$exe" verify e.h5 > /dev/null

# A CPU-bound job over a grid and a fixed param, into compressed tables.
run pi --grid row=0..59 --param order=4 --store p.h5 --compress 3
"$exe" export p.h5 --format jsonl > /dev/null
