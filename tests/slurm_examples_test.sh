#!/usr/bin/env bash
# slurm/*.sbatch are what `mpibatch submit --dry-run` writes today.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
USER=you bash "$root/tools/slurm_examples.sh" "$1" "$tmp"
diff -r -x README.md "$root/slurm" "$tmp"
echo "slurm examples: current"
