#!/usr/bin/env bash
# Installs what is missing, builds with warnings as errors, runs every test.
# Usage: tools/test.sh            (as root, or with sudo rights for apt-get)
# CI=true runs the "stress" label in its short form (MPIBATCH_STRESS_TRIALS, _CHAOS_TRIALS).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cmake -S . -B build -DMPIBATCH_WERROR=ON
cmake --build build -j"$(nproc)"
# Open MPI refuses root without these; the tests oversubscribe the 2 cores.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [[ "${CI:-}" == "true" ]]; then
  export MPIBATCH_STRESS_TRIALS="${MPIBATCH_STRESS_TRIALS:-100}"
  export MPIBATCH_CHAOS_TRIALS="${MPIBATCH_CHAOS_TRIALS:-9}"
fi
cd build
ctest --output-on-failure --timeout 1800 -j2
# The same tests under AddressSanitizer and UndefinedBehaviorSanitizer, and
# short fuzz runs (tools/sanitize.sh says what it leaves to the build above).
cd ..
bash tools/sanitize.sh
