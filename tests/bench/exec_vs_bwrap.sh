#!/usr/bin/env bash
# Start-up cost of a sandbox: `corral exec -- /bin/true` under policies/default.toml against
# bubblewrap given the same isolation (every namespace, the same binds and symlinks, a fresh
# /proc, a minimal /dev, a private /tmp, and the same seccomp filter as BPF), in one run.
# Then the floor under both (tests/bench/start_floor.cc): what a program start and the sandbox's
# namespaces cost here, and what bwrap plus the one program start more that corral makes (its
# helper) would come to.
# Usage: tests/bench/exec_vs_bwrap.sh [CORRAL]   (needs hyperfine, bubblewrap, python3 and g++)
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
# The three alternate in rounds of 20 runs each, so that the machine's drift (a shared VM's load
# moves by 2x within minutes) falls on all of them alike; the medians are over every run.
wrap="bash -c 'exec 9<$work/filter.bpf; exec"
rounds=$(( (runs + 19) / 20 ))
for ((i = 0; i < rounds; i++)); do
  hyperfine -N --warmup 3 --runs 20 --export-json "$work/round-$i.json" \
    -n corral "$wrap $corral_cmd'" -n bwrap "$wrap $bwrap_cmd'" -n shell "$wrap /bin/true'" >/dev/null
done

# The helper as built next to corral, or as installed.
helper=$(dirname "$corral")/../sandbox/corral-sandbox
[ -x "$helper" ] || helper=$(dirname "$corral")/../libexec/corral/corral-sandbox
[ -x "$helper" ] || { echo "exec_vs_bwrap: no corral-sandbox next to $corral" >&2; exit 2; }
c++ -std=c++20 -O2 tests/bench/start_floor.cc -o "$work/start_floor"
"$work/start_floor" "$helper" >"$work/floor.txt"

python3 - "$work" "$(id -un)" "$((rounds * 20))" <<'PY'
import glob, json, statistics, sys
work, user, runs = sys.argv[1:]
floor = dict(line.strip().split("=") for line in open(work + "/floor.txt"))
times = {"corral": [], "bwrap": [], "shell": []}
for path in glob.glob(work + "/round-*.json"):
    for r in json.load(open(path))["results"]:
        times[r["command"]] += r["times"]
med = {name: statistics.median(t) for name, t in times.items()}
corral, bwrap, shell = med["corral"] - med["shell"], med["bwrap"] - med["shell"], med["shell"]
print(f"corral exec vs bwrap, median wall time of /bin/true, as {user} ({runs} runs each, alternating)")
print(f"  corral exec : {corral * 1000:6.2f} ms")
print(f"  bwrap       : {bwrap * 1000:6.2f} ms")
print(f"  (both ran through the same shell wrapper, {shell * 1000:.2f} ms, subtracted)")
print(f"  ratio       : {corral / bwrap:.2f}x bwrap (target: at most 0.8x)")
start, cpuid, n = float(floor["start_us"]), float(floor["cpuid_us"]), int(floor["start_cpuid"])
print("The floor on this machine:")
print(f"  one program start, exec to exit (the static helper): {start / 1000:.2f} ms, of which")
print(f"    {n} cpuid instructions before main at {cpuid:.2f} us each: {n * cpuid / 1000:.2f} ms")
print(f"  a clone with the seven namespaces, exit and reaping : {float(floor['namespaces_us']) / 1000:.2f} ms")
print(f"  bwrap plus corral's one program start more (its helper): "
      f"{(bwrap * 1000 + start / 1000):.2f} ms, {(bwrap * 1000 + start / 1000) / (bwrap * 1000):.2f}x bwrap")
PY
