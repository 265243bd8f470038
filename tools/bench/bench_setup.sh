# Sourced first by the shell benchmarks, after set -euo pipefail:
#   source "$(dirname "$0")/bench_setup.sh" NAME [PARENT]
# Runs from the repository's top, lets mpirun run as root, and makes $dir, a scratch folder
# mpibatch-NAME-XXXXXX under PARENT (default /tmp), removed at exit.
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
dir=$(mktemp -d "${2:-/tmp}/mpibatch-$1-XXXXXX")
trap 'rm -rf "$dir"' EXIT
