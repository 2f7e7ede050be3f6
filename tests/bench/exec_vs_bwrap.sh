#!/usr/bin/env bash
# Start-up cost of a sandbox: `corral exec -- /bin/true` under policies/default.toml against
# bubblewrap given the same isolation (every namespace, the same binds and symlinks, a fresh
# /proc, a minimal /dev, a private /tmp, and the same seccomp filter as BPF), in one run.
# Usage: tests/bench/exec_vs_bwrap.sh [CORRAL]   (needs hyperfine and bubblewrap)
set -euo pipefail
cd "$(dirname "$0")/../.."
corral=$(realpath "${1:-build/launcher/corral}")
export runs=${RUNS:-300}
work=$(mktemp -d /tmp/corral-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
# The workspace is a git repository, as a task's worktree is.
git init -q "$work/ws"
"$corral" policy export policies/default.toml --format bpf >"$work/filter.bpf"

# /tmp first: the workspace lives below it, and bwrap applies its options in order.
bwrap_cmd="bwrap --unshare-all --die-with-parent --new-session --proc /proc --dev /dev --tmpfs /tmp"
bwrap_cmd+=" --ro-bind /usr /usr --ro-bind /etc /etc"
for link in bin lib lib64 sbin; do
  [ -L /$link ] && bwrap_cmd+=" --symlink $(readlink /$link) /$link"
done
bwrap_cmd+=" --bind $work/ws $work/ws --ro-bind $work/ws/.git/config $work/ws/.git/config"
bwrap_cmd+=" --ro-bind $work/ws/.git/hooks $work/ws/.git/hooks"
bwrap_cmd+=" --chdir $work/ws --seccomp 9 /bin/true"
corral_cmd="$corral exec --policy policies/default.toml --cwd $work/ws -- /bin/true"

# bwrap reads its filter from a descriptor, which needs a shell to open; corral runs through the
# same shell so both pay the same wrapper, and the wrapper alone is timed and subtracted.
wrap="bash -c 'exec 9<$work/filter.bpf; exec"
hyperfine -N --warmup 20 --runs "$runs" --export-csv "$work/times.csv" \
  -n corral "$wrap $corral_cmd'" -n bwrap "$wrap $bwrap_cmd'" -n shell "$wrap /bin/true'" >/dev/null

awk -F, -v user="$(id -un)" '
  NR == 2 { corral = $4 }
  NR == 3 { bwrap = $4 }
  NR == 4 { shell = $4 }
  END {
    corral -= shell; bwrap -= shell
    printf "corral exec vs bwrap, median wall time of /bin/true, as %s (%s runs each)\n", user, ENVIRON["runs"]
    printf "  corral exec : %6.2f ms\n", corral * 1000
    printf "  bwrap       : %6.2f ms\n", bwrap * 1000
    printf "  (both ran through the same shell wrapper, %.2f ms, subtracted)\n", shell * 1000
    printf "  ratio       : %.2fx bwrap (target: at most 0.8x)\n", corral / bwrap
  }' "$work/times.csv"
