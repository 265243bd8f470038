#!/usr/bin/env bash
# Write amplification of the store through the command: RUNS runs of TASKS new sqrt tasks each
# into one store (mpirun -n 3 --oversubscribe, as users run it). Bytes written are what the
# kernel accounted to the ranks (GNU time's %O, 512-byte blocks: rusage's ru_oublock), summed
# over every run, against the store's final size and against the results' own bytes (x and
# value: 16 bytes a task). Usage: tools/bench/write_amplification.sh [RUNS] [TASKS] [DIR]
set -euo pipefail
source "$(dirname "$0")/bench_setup.sh" wa "${3:-/tmp}"
runs=${1:-100}
tasks=${2:-100000}
store="$dir/wa.h5"
blocks=0
start=$(date +%s.%N)
for ((r = 0; r < runs; r++)); do
  from=$((r * tasks))
  # Each rank's count to a file of its own (their standard errors interleave).
  mpirun -n 3 --oversubscribe sh -c '/usr/bin/time -f %O -o "$0.$OMPI_COMM_WORLD_RANK" "$@"' \
    "$dir/blocks" build/tools/mpibatch run sqrt --grid "x=$from..$((from + tasks - 1))" \
    --store "$store" --progress none 2>/dev/null
  for f in "$dir"/blocks.*; do blocks=$((blocks + $(tail -1 "$f"))); done
  rm -f "$dir"/blocks.*
done
sync
end=$(date +%s.%N)
final=$(du -sb "$store" "$store.d" | awk '{s += $1} END {printf "%.0f\n", s}')
written=$((blocks * 512))
total=$((runs * tasks))
tables=$(ls "$store.d" | grep -c '\.h5$')
echo "runs $runs x $tasks tasks = $total tasks in $(echo "$end - $start" | bc) s"
echo "bytes written $written; store $final bytes ($((final / total)) a task) in $tables tables"
echo "write amplification: $(echo "scale=2; $written / $final" | bc) x the store, $(echo "scale=2; $written / ($total * 16)" | bc) x the results' bytes"
