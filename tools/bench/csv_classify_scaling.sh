#!/usr/bin/env bash
# csv_classify scaling, as in the Wallaroo seed: 1k, 10k, 100k and 1M rows;
# the serial reference, then mpibatch with 1 and 2 workers (mpirun -n 2 and 3).
# Every output is compared byte for byte with the serial one.
# Usage: tools/bench/csv_classify_scaling.sh [MAX_ROWS]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/../.."
max=${1:-1000000}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
secs() { local s=$1; shift; "$@"; echo "$(date +%s.%N) - $s" | bc; }
printf '%-9s %10s %10s %10s %9s\n' rows serial_s 1worker_s 2workers_s identical
for rows in 1000 10000 100000 1000000; do
  (( rows <= max )) || break
  python3 - "$tmp/in.csv" "$rows" <<'PY'
import csv, random, sys
random.seed(1)
with open(sys.argv[1], "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["id", "name", "note"])
    for i in range(int(sys.argv[2])):
        w.writerow([i, "n%d" % random.randint(0, 99), random.choice(["plain", "with, comma", 'a "quote"', "two\nlines"])])
PY
  s=$(date +%s.%N); build/tools/csv_classify_serial "$tmp/in.csv" "$tmp/serial.csv"; t0=$(echo "$(date +%s.%N) - $s" | bc)
  same=yes
  for np in 2 3; do
    rm -rf "$tmp/c.h5" "$tmp/c.h5.d" "$tmp/out.csv"
    s=$(date +%s.%N)
    mpirun -n $np --oversubscribe build/tools/mpibatch run csv_classify --param input="$tmp/in.csv" \
      --param output="$tmp/out.csv" --store "$tmp/c.h5" --progress none 2>/dev/null
    t=$(echo "$(date +%s.%N) - $s" | bc)
    cmp -s "$tmp/serial.csv" "$tmp/out.csv" || same=NO
    if (( np == 2 )); then t1=$t; else t2=$t; fi
  done
  printf '%-9s %10.2f %10.2f %10.2f %9s\n' "$rows" "$t0" "$t1" "$t2" "$same"
done
