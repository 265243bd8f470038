#!/usr/bin/env bash
# Installs the Debian 12 packages mpibatch needs, only those missing.
# Idempotent: a second run installs nothing. Needs root (or sudo) for apt-get.
# Usage: tools/setup.sh [--slurm] [--bench]
#   --slurm  adds the one-node Slurm packages for the slurm tests
#   --bench  adds the peers the benchmarks compare with (joblib, mpi4py, GNU Parallel, hyperfine)
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libopenmpi-dev openmpi-bin
  libhdf5-dev hdf5-tools
  libboost-serialization-dev
  libgtest-dev libgmock-dev
  libcli11-dev libcsv-dev nlohmann-json3-dev
  libxxhash-dev
  libstb-dev
  libabsl-dev
  python3 python3-h5py python3-numpy python3-pandas
  python3-dev pybind11-dev
  clang-14 libclang-rt-14-dev  # tools/sanitize.sh: ASan, UBSan and libFuzzer
  chromium python3-pil  # report_test renders a report in headless Chromium and reads the PNG
)
for arg in "$@"; do
  case "$arg" in
    --slurm) packages+=(slurmctld slurmd slurm-client munge) ;;
    --bench) packages+=(python3-joblib python3-mpi4py parallel hyperfine bc) ;;
    *) echo "setup: unknown option $arg (use --slurm, --bench)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
