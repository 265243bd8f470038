#!/usr/bin/env bash
# Writes slurm/*.sbatch: what `mpibatch submit --dry-run` writes for each built-in job, with
# the mpibatch path and store folder as placeholders.
# Usage: tools/slurm_examples.sh [MPIBATCH [OUT_DIR]]   (default build/tools/mpibatch, slurm)
set -euo pipefail
cd "$(dirname "$0")/.."
m=${1:-build/tools/mpibatch}
out=${2:-slurm}
example() {
  local name=$1; shift
  "$m" submit "$@" --store "/scratch/$USER/$name.h5" --dry-run |
    sed -e "s|'$(readlink -f "$m")'|mpibatch|g" -e "s|^cd '$(pwd)' |cd '/scratch/$USER' |" > "$out/$name.sbatch"
}
USER=${USER:-you}
example pi pi --grid row=0..9999 --param order=7 --ntasks 64 --time 1:00:00 --chain 5
example sqrt sqrt --grid x=0..99999999 --ntasks 64 --time 30:00 --chain 3
example sleep sleep --tasks sleeps.txt --ntasks 8 --time 10:00 --chain 5
example exec exec --tasks commands.txt --ntasks 32 --time 2:00:00 --chain 10 --retries 2
example csv_classify csv_classify --param input=in.csv --param output=out.csv --ntasks 32 --time 1:00:00 --chain 3
example image_resize image_resize --param input=photos --param output=small --param width=320 --param height=240 \
  --ntasks 16 --time 30:00 --chain 3 --launcher mpirun
