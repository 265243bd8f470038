#!/usr/bin/env bash
# The sanitizer stage of tools/test.sh: builds build-sanitize with clang 14,
# AddressSanitizer + UndefinedBehaviorSanitizer (MPIBATCH_SANITIZE) and the
# libFuzzer targets (MPIBATCH_FUZZ), warnings as errors, then runs under
# the sanitizers:
#   - every unit test (the unit_tests and exec_template_test binaries);
#   - the engine under mpirun at 1 to 4 ranks (label sanitize_mpi): the
#     mpibatch command's runs, reruns, failures, verbs (tests/fuzz/mpi_smoke.sh).
#     engine_test and engine_child cannot be built by clang 14 against
#     Debian's libstdc++ 12 (std::views::iota and filter are not ranges to
#     it; clang 16 fixed that), so they are not built here;
#   - each fuzz target for MPIBATCH_FUZZ_SECONDS (default 20; label fuzz).
# Left to the main build: the python-driven tests (cli, python_job, h5py,
# store_doc_example: minutes each under ASan, and the python job embeds a
# CPython that is not instrumented), install_consumer, and the slurm, tcp
# and stress labels.
#
# Usage: tools/sanitize.sh              the short form (CI; about 12 minutes)
#        tools/sanitize.sh --fuzz SECS  the long form: only the fuzz targets,
#                                       each for SECS seconds, two at a time
# A finding leaves its input in build-sanitize/tests/fuzz/artifacts/; replay
# it with build-sanitize/tests/fuzz/fuzz_TARGET FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzz_only=""
if [[ "${1:-}" == "--fuzz" ]]; then
  fuzz_only=1
  export MPIBATCH_FUZZ_SECONDS="${2:?--fuzz needs a number of seconds}"
fi

# -O1 and line tables only: half the compile time of -O2 -g, and stacks
# still name files and lines.
cmake -S . -B build-sanitize -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" \
  -DMPIBATCH_SANITIZE=ON -DMPIBATCH_FUZZ=ON -DMPIBATCH_WERROR=ON -DMPIBATCH_BUILD_BENCHMARKS=OFF \
  -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
targets=(fuzz_targets)
[[ -n "$fuzz_only" ]] ||
  targets+=(unit_tests key_print store_crash_writer exec_template_test mpibatch_command)
cmake --build build-sanitize -j"$(nproc)" --target "${targets[@]}"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export UBSAN_OPTIONS=print_stacktrace=1
supp="$PWD/tests/fuzz/lsan.supp"
cd build-sanitize
failed=0  # every stage runs; the script fails at the end if one did
if [[ -z "$fuzz_only" ]]; then
  # Unit tests by their suites, with the fast unwinder (full unwinding
  # would take five times as long). The one test whose damage makes HDF5
  # itself leak runs alone, its suppression found by the full unwinder.
  suites=$( (tests/unit_tests --gtest_list_tests; tests/exec_template_test --gtest_list_tests) |
    grep -v '^ \|^Running' | tr -d '.' | paste -sd'|')
  ctest -R "^($suites)\\." -E '^StoreChecksum\.RandomFlips' -j2 --timeout 900 --output-on-failure ||
    failed=1
  ASAN_OPTIONS=fast_unwind_on_malloc=0 LSAN_OPTIONS="suppressions=$supp:print_suppressions=0" \
    ctest -R '^StoreChecksum\.RandomFlips' --timeout 900 --output-on-failure || failed=1
  ctest -L sanitize_mpi -j2 --timeout 900 --output-on-failure || failed=1
fi
ctest -L fuzz -j2 --timeout $((${MPIBATCH_FUZZ_SECONDS:-20} + 600)) --output-on-failure || failed=1
exit $failed
