#!/usr/bin/env bash
# mpibatch report on a large run: the report's size, the time to write it, and the time
# headless Chromium takes to render it to a PNG (target: under 2 s, under 5 MB at 10^7).
# Usage: tools/bench/report_bench.sh [TASKS] [DIR]   (default 10000000, /tmp)
set -euo pipefail
source "$(dirname "$0")/bench_setup.sh" report "${2:-/tmp}"
tasks=${1:-10000000}
m=build/tools/mpibatch
mpirun -n 3 --oversubscribe $m run sqrt --grid "x=1..$tasks" --store "$dir/r.h5" --progress none
seconds() { local s; s=$(date +%s.%N); "$@" > /dev/null 2>&1; echo "$(date +%s.%N) - $s" | bc; }
write=$(seconds $m report "$dir/r.h5" -o "$dir/r.html")
size=$(stat -c %s "$dir/r.html")
render=$(seconds chromium --headless --no-sandbox --disable-gpu --window-size=1200,1500 \
  --screenshot="$dir/r.png" "file://$dir/r.html")
[[ -s "$dir/r.png" ]] || { echo "report_bench: chromium wrote no PNG" >&2; exit 1; }
echo "| tasks | report size | mpibatch report | Chromium: start, render, PNG |"
echo "| --- | --- | --- | --- |"
printf "| %s | %.0f KB | %.2f s | %.2f s |\n" "$tasks" "$(echo "$size / 1024" | bc -l)" "$write" "$render"
