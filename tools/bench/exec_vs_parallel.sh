#!/usr/bin/env bash
# exec farming `true` and `sleep 0.01` at 2 workers, against GNU Parallel -j2 --joblog.
# Commands are made distinct (mpibatch would run a repeated command once): `true N` and
# `sleep 0.0100N` (10 ms and a hair). Usage: tools/bench/exec_vs_parallel.sh [N]
# (default 2000 commands; needs tools/setup.sh --bench for GNU Parallel and bc)
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-2000}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
report() { printf '%-48s %10.1f commands/s\n' "$1" "$(echo "$2 / ($4 - $3)" | bc -l)"; }
for prog in true sleep; do
  if [[ $prog == true ]]; then template='true {i}'; arg='true {}'; else template='sleep 0.0100{i}'; arg='sleep 0.0100{}'; fi
  start=$(date +%s.%N)
  mpirun -n 3 --oversubscribe build/tools/mpibatch run exec --cmd "$template" --grid "i=1..$n" \
    --store "$tmp/exec.h5" --progress none 2>/dev/null
  report "mpibatch run exec '$template' (2 workers)" "$n" "$start" "$(date +%s.%N)"
  # The run's own rate, without mpirun's start-up: what the store recorded.
  build/tools/mpibatch status "$tmp/exec.h5" | grep '^rate' 
  rm -rf "$tmp/exec.h5" "$tmp/exec.h5.d"
  start=$(date +%s.%N)
  seq "$n" | parallel -j2 --joblog "$tmp/joblog" "$arg"
  report "parallel -j2 --joblog '$arg'" "$n" "$start" "$(date +%s.%N)"
done
# The floor: posix_spawn + waitpid back to back, nothing else.
build/tools/bench/spawn_floor 500 true
build/tools/bench/spawn_floor 500 sleep 0.01
