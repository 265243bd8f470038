#!/usr/bin/env bash
# csv_classify scaling, as in the Wallaroo seed: 1k, 10k, 100k and 1M rows;
# the serial reference, then mpibatch with 1 and 2 workers (mpirun -n 2 and 3).
# Every output is compared byte for byte with the serial one.
# Usage: tools/bench/csv_classify_scaling.sh [MAX_ROWS]   (default 1000000)
set -euo pipefail
source "$(dirname "$0")/bench_setup.sh" csv
max=${1:-1000000}
secs() { local s=$1; shift; "$@"; echo "$(date +%s.%N) - $s" | bc; }
printf '%-9s %10s %10s %10s %9s\n' rows serial_s 1worker_s 2workers_s identical
for rows in 1000 10000 100000 1000000; do
  (( rows <= max )) || break
  python3 - "$dir/in.csv" "$rows" <<'PY'
import csv, random, sys
random.seed(1)
with open(sys.argv[1], "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["id", "name", "note"])
    for i in range(int(sys.argv[2])):
        w.writerow([i, "n%d" % random.randint(0, 99), random.choice(["plain", "with, comma", 'a "quote"', "two\nlines"])])
PY
  s=$(date +%s.%N); build/tools/csv_classify_serial "$dir/in.csv" "$dir/serial.csv"; t0=$(echo "$(date +%s.%N) - $s" | bc)
  same=yes
  for np in 2 3; do
    rm -rf "$dir/c.h5" "$dir/c.h5.d" "$dir/out.csv"
    s=$(date +%s.%N)
    mpirun -n $np --oversubscribe build/tools/mpibatch run csv_classify --param input="$dir/in.csv" \
      --param output="$dir/out.csv" --store "$dir/c.h5" --progress none 2>/dev/null
    t=$(echo "$(date +%s.%N) - $s" | bc)
    cmp -s "$dir/serial.csv" "$dir/out.csv" || same=NO
    if (( np == 2 )); then t1=$t; else t2=$t; fi
  done
  printf '%-9s %10.2f %10.2f %10.2f %9s\n' "$rows" "$t0" "$t1" "$t2" "$same"
done
