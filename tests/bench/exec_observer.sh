#!/usr/bin/env bash
# Cost of auditing: a task that executes 1,000 short programs, in `corral exec` with and without
# the exec observer (a seccomp notification per execve that the supervisor reads and lets
# through), in one run. Prints the median wall times and their ratio (target: at most 1.3x).
# Usage: tests/bench/exec_observer.sh [CORRAL]   (needs hyperfine)
set -euo pipefail
cd "$(dirname "$0")/../.."
corral=$(realpath "${1:-build/launcher/corral}")
export runs=${RUNS:-10}
work=$(mktemp -d /tmp/corral-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
script='i=0; while [ $i -lt 1000 ]; do /bin/true; i=$((i+1)); done'
base="$corral exec --policy policies/default.toml --cwd $work"
hyperfine -N --warmup 2 --runs "$runs" --export-csv "$work/times.csv" \
  -n plain "$base -- sh -c '$script'" \
  -n observed "$base --observe-exec --result $work/result.json -- sh -c '$script'" >/dev/null
observed=$(grep -o '"argv":\["/bin/true"\]' "$work/result.json" | wc -l)
awk -F, -v user="$(id -un)" -v observed="$observed" '
  NR == 2 { plain = $4 }
  NR == 3 { watched = $4 }
  END {
    printf "1,000 programs in one sandbox, median wall time, as %s (%s runs each)\n", user, ENVIRON["runs"]
    printf "  without the exec observer : %7.1f ms\n", plain * 1000
    printf "  with the exec observer    : %7.1f ms (%d executions of /bin/true recorded)\n", watched * 1000, observed
    printf "  ratio                     : %5.2fx (target: at most 1.30x)\n", watched / plain
  }' "$work/times.csv"
