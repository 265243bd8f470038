#!/usr/bin/env bash
# One timed libFuzzer run of a target over its seed corpus (a ctest of label
# "fuzz"). New inputs go to BUILD_DIR/corpus/TARGET, never to the seeds;
# a crash, leak or sanitizer report leaves its input in BUILD_DIR/artifacts.
# MPIBATCH_FUZZ_SECONDS: how long (default 20, CI's short form).
# Usage: run_fuzz.sh TARGET_EXE SEED_DIR BUILD_DIR
set -euo pipefail
exe=$1 seeds=$2 out=$3
name=$(basename "$exe")
mkdir -p "$out/corpus/$name" "$out/artifacts"
exec "$exe" -max_total_time="${MPIBATCH_FUZZ_SECONDS:-20}" -timeout=30 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$out/artifacts/$name-" "$out/corpus/$name" "$seeds"
