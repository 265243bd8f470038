#!/usr/bin/env bash
# 10^8 tasks through the command, as users run it (mpirun -n 3 --oversubscribe: 2 workers):
#  1. a full run into a new store: wall clock from the shell, rank 0's peak memory (GNU time's
#     %M, per rank), the store's size;
#  2. a kill -9 of the whole job at about half way into a second new store, then the same
#     command again: it completes, and the store holds every task exactly once (verify counts
#     the records; status the run's counts).
# Not a CI test: about 10 minutes and 20 GB of disk. Usage: tools/bench/hundred_million.sh [N] [DIR]
set -euo pipefail
source "$(dirname "$0")/bench_setup.sh" 1e8 "${2:-/tmp}"
n=${1:-100000000}
M=build/tools/mpibatch
grid="x=0..$((n - 1))"

# Each rank's peak memory to a file of its own (their standard errors interleave).
timed_run() {
  mpirun -n 3 --oversubscribe sh -c '/usr/bin/time -f "%M %e" -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' \
    "$dir/time" "$M" run sqrt --grid "$grid" --store "$1" --progress none
}

store="$dir/full.h5"
start=$(date +%s.%N)
timed_run "$store"
end=$(date +%s.%N)
read -r kib0 _ < "$dir/time.0"
bytes=$(du -sb "$store" "$store.d" | awk '{s += $1} END {printf "%.0f\n", s}')
echo "| $n tasks, new store | $(echo "$end - $start" | bc) s | rank 0 peak $((kib0 / 1024)) MiB = $(echo "scale=1; $kib0 * 1024 / $n" | bc) bytes a task | store $((bytes / 1048576)) MiB = $(echo "scale=1; $bytes / $n" | bc) bytes a task |"
rm -rf "$store" "$store.d"

# Kill -9 at about half way, then the same command again.
store="$dir/killed.h5"
mpirun -n 3 --oversubscribe "$M" run sqrt --grid "$grid" --store "$store" --progress none &
job=$!
half=$((n / 2))
done_so_far=0
while ((done_so_far < half)); do
  sleep 2
  done_so_far=$("$M" status "$store" --json 2>/dev/null |
    /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["computed"]+s["cached"])' ||
    echo 0)
done
pkill -9 -P "$job" || true
kill -9 "$job" 2>/dev/null || true
pkill -9 -f "$M run sqrt" || true
wait "$job" 2>/dev/null || true
echo "killed at $done_so_far of $n tasks done"
start=$(date +%s.%N)
"$M" status "$store" --json | /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin); print("after the kill: state", s["state"], "computed", s["computed"])'
timed_run "$store"
end=$(date +%s.%N)
"$M" status "$store" --json | /usr/bin/python3 -c 'import json,sys; s=json.load(sys.stdin); print("rerun: total", s["total"], "computed", s["computed"], "cached", s["cached"], "state", s["state"])'
"$M" verify "$store"
echo "| rerun after kill -9 at $done_so_far | $(echo "$end - $start" | bc) s |"
