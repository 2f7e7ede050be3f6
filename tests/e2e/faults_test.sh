#!/usr/bin/env bash
# Fault injection and abuse, end to end with real sandboxes:
#   - kill -9 of corral at 20 random moments of a 12-task run, each followed by corral resume:
#     the same merged tree and statuses as an uninterrupted run, no sandbox process left,
#     git fsck --strict clean, the user's branch, index, working tree and stash untouched;
#   - agents that misbehave: 3 GB of output, binary output, a grandchild that keeps stdout open, 10,000 files,
#     a file name with a newline, a symlink loop, an unreadable directory, ignoring SIGTERM;
#   - a worktree deleted under a running task; git gc running beside a run;
#   - in a private mount namespace (unshare; as root, or as a user with a user namespace): the
#     disk filling up while a task writes, and the run directory made read-only mid-run.
# Usage: faults_test.sh CORRAL SOURCE_DIR
set -u
corral=$1
src=$2
scratch=$(mktemp -d /tmp/corral-faults-XXXXXX)
trap 'chmod -R u+rwx "$scratch" 2>/dev/null; rm -rf "$scratch"' EXIT
. "$(dirname "$0")/checks.sh"
policy=$src/policies/default.toml
git_() { git -c user.name=t -c user.email=t@t -c init.defaultBranch=main "$@"; }

new_repo() {  # new_repo DIR: a repository with a commit, a dirty file, a staged file, a stash
  git_ init -q "$1"
  (cd "$1" && echo base >base.txt && echo 1 >tracked.txt && git_ add . && git_ commit -qm base &&
    echo stash-me >tracked.txt && git_ stash -q && echo dirty >tracked.txt &&
    echo staged >staged.txt && git_ add staged.txt && echo untracked >untracked.txt)
}
user_state() {  # user_state DIR: what must never change
  (cd "$1" && git rev-parse HEAD && git symbolic-ref HEAD && git status --porcelain=v1 &&
    git stash list --format=%H && git diff && git diff --cached && cat untracked.txt)
}

# --- kill -9 at 20 random moments, then resume -------------------------------------------------
plan12=$scratch/plan12.toml
for i in $(seq 0 11); do
  deps=""
  [ "$i" -ge 4 ] && deps="depends_on = [\"t$((i - 4))\"]"
  cat >>"$plan12" <<EOF
[[task]]
id = "t$i"
policy = "$policy"
run = ["sh", "-c", "sleep 0.0$((i % 4 + 2)); echo $i > f$i.txt; echo shared-$i >> shared-$((i % 3)).txt"]
$deps

EOF
done
new_repo "$scratch/ref"
(cd "$scratch/ref" && "$corral" run "$plan12" >/dev/null 2>&1)
ref_exit=$?  # 3: the tasks that append to the same files conflict at the merge
ref_run=$(ls "$scratch/ref/.git/corral/runs")
ref_tree=$(git -C "$scratch/ref" rev-parse "corral/$ref_run/merged^{tree}")
summary() {  # summary REPO RUN: each task's status, and what was merged and left out
  python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
print(sorted((t["id"], t["status"], tuple(t["files_changed"])) for t in r["tasks"]))
print(r["merge"]["merged"], r["merge"]["conflicted"])' "$1/.git/corral/runs/$2/report.json"
}
ref_summary=$(summary "$scratch/ref" "$ref_run")
# The uninterrupted run's length bounds the random moments.
start=$(date +%s%N)
new_repo "$scratch/timing"
(cd "$scratch/timing" && "$corral" run "$plan12" >/dev/null 2>&1)
span_ms=$((($(date +%s%N) - start) / 1000000))
resumed_runs=0 killed_before_start=0 bad=0
for k in $(seq 1 20); do
  repo=$scratch/k$k
  new_repo "$repo"
  before=$(user_state "$repo")
  (cd "$repo" && exec "$corral" run "$plan12" >"$scratch/k$k.log" 2>&1) &
  pid=$!
  delay=$((RANDOM % (span_ms + 1)))
  sleep "$(printf '0.%03d' "$delay")"
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  run=$(ls "$repo/.git/corral/runs" 2>/dev/null | head -1)
  if [ -z "$run" ]; then  # killed before the run existed: nothing to resume
    killed_before_start=$((killed_before_start + 1))
    (cd "$repo" && "$corral" run "$plan12" >/dev/null 2>&1)
    run=$(ls "$repo/.git/corral/runs" | head -1)
  else
    resumed_runs=$((resumed_runs + 1))
    (cd "$repo" && "$corral" resume "$run" >>"$scratch/k$k.log" 2>&1)
    status=$?
    if [ "$status" -eq 2 ] && grep -q "ended (exit $ref_exit); nothing to resume" "$scratch/k$k.log"; then
      status=$ref_exit  # the kill came after the run had ended
    elif [ "$status" -eq 2 ] && grep -q "never started" "$scratch/k$k.log"; then
      # killed before the run's start was on record: a new run is the way on
      killed_before_start=$((killed_before_start + 1))
      resumed_runs=$((resumed_runs - 1))
      rm -rf "$repo/.git/corral/runs/$run"
      (cd "$repo" && "$corral" run "$plan12" >/dev/null 2>&1)
      status=$?
      run=$(ls "$repo/.git/corral/runs" | head -1)
    fi
    [ "$status" -eq "$ref_exit" ] ||
      { echo "FAIL: resume after kill $k at ${delay} ms exited $status, not $ref_exit"; sed 's/^/  | /' "$scratch/k$k.log" | tail -15; bad=$((bad + 1)); continue; }
  fi
  tree=$(git -C "$repo" rev-parse "corral/$run/merged^{tree}" 2>/dev/null)
  [ "$tree" = "$ref_tree" ] || { echo "FAIL: kill $k at ${delay} ms: merged tree $tree, not $ref_tree"; bad=$((bad + 1)); }
  [ "$(summary "$repo" "$run")" = "$ref_summary" ] ||
    { echo "FAIL: kill $k at ${delay} ms: another report"; summary "$repo" "$run"; bad=$((bad + 1)); }
  git -C "$repo" fsck --strict >/dev/null 2>&1 || { echo "FAIL: kill $k: git fsck --strict"; bad=$((bad + 1)); }
  [ "$(user_state "$repo")" = "$before" ] || { echo "FAIL: kill $k: the user's state changed"; bad=$((bad + 1)); }
  (cd "$repo" && "$corral" audit verify "$run" >"$scratch/verify" 2>&1) ||
    { echo "FAIL: kill $k at ${delay} ms: audit verify"; sed 's/^/  | /' "$scratch/verify"; bad=$((bad + 1)); }
done
check "20 kills, each resumed to the same report as an uninterrupted run" 0 test "$bad" -eq 0
echo "kill -9: $resumed_runs resumed, $killed_before_start killed before the run existed (${span_ms} ms runs)"
check "no sandbox process outlived the kills" 1 pgrep -f "shared-[0-9]"

# --- agents that misbehave ---------------------------------------------------------------------
new_repo "$scratch/abuse"
cd "$scratch/abuse"
before=$(user_state .)
cat >"$scratch/abuse.toml" <<EOF
[[task]]
id = "binary"
policy = "$policy"
run = ["sh", "-c", "head -c 65536 /dev/urandom; printf '\\\\000\\\\377\\\\n'; echo done > b.txt"]

[[task]]
id = "loud"
policy = "$policy"
run = ["sh", "-c", "head -c 3000000000 /dev/zero | tr '\\\\000' x; echo done > l.txt"]

[[task]]
id = "grandchild"
policy = "$policy"
run = ["sh", "-c", "(sleep 600 &) ; echo left a grandchild > g.txt"]

[[task]]
id = "many"
policy = "$policy"
run = ["sh", "-c", "mkdir many && cd many && seq 1 10000 | xargs touch"]

[[task]]
id = "oddnames"
policy = "$policy"
run = ["sh", "-c", "printf x > 'new\\nline.txt'; ln -s loop-b loop-a; ln -s loop-a loop-b; mkdir closed; echo s > closed/secret; chmod 000 closed"]

[[task]]
id = "stubborn"
policy = "$policy"
timeout = "1s"
run = ["sh", "-c", "trap '' TERM; echo partial > p.txt; while true; do sleep 0.1; done"]
EOF
started=$(date +%s)
check "a run of misbehaving agents ends" 1 "$corral" run "$scratch/abuse.toml"
elapsed=$(($(date +%s) - started))
echo "misbehaving agents: the run took ${elapsed} s"
run=$(ls .git/corral/runs | head -1)
check "their statuses" 0 python3 -c '
import json, sys
r = {t["id"]: t for t in json.load(open(sys.argv[1]))["tasks"]}
for ok in ["binary", "loud", "grandchild", "many", "oddnames"]:
    assert r[ok]["status"] == "succeeded", (ok, r[ok])
assert r["stubborn"]["status"] == "timed-out", r["stubborn"]
assert len(r["many"]["files_changed"]) == 10000, len(r["many"]["files_changed"])
assert r["loud"]["log_dropped_bytes"] == 3000000000 - 64 * 1024 * 1024, r["loud"]
# An unreadable folder is committed where corral can read it (as root), else reported by path.
skipped = [s["path"] for s in r["oddnames"].get("not_committed", [])]
assert "closed/secret" in r["oddnames"]["files_changed"] or any(p.startswith("closed") for p in skipped), r["oddnames"]
assert "new\nline.txt" in r["oddnames"]["files_changed"], r["oddnames"]
' ".git/corral/runs/$run/report.json"
cat "$scratch/out" "$scratch/err" | head -5
check "10,000 files are in the commit" 0 test "$(git ls-tree -r --name-only "corral/$run/many" | grep -c '^many/')" -eq 10000
check "the name with a newline is committed as it is" 0 git cat-file -e "corral/$run/oddnames:new
line.txt"
check "the symlink loop is committed as links" 0 test "$(git cat-file -p "corral/$run/oddnames:loop-a")" = loop-b
check "the stubborn task's work so far is kept" 0 git cat-file -e "corral/$run/stubborn:p.txt"
check "3 GB of output: the log is capped at 64 MiB and says so" 0 \
  grep -q "the log stops at 64MiB; $((3000000000 - 67108864)) more bytes of output were dropped" \
  ".git/corral/runs/$run/logs/loud.log"
check "binary output is captured" 0 test "$(wc -c <".git/corral/runs/$run/logs/binary.log")" -ge 65536
check "no grandchild or stubborn agent is left" 1 pgrep -f "sleep 600|trap '' TERM"
check "the user's branch, index, working tree and stash are untouched" 0 test "$(user_state .)" = "$before"
check "git fsck --strict after the misbehaving agents" 0 git fsck --strict

# --- a worktree deleted under a running task; git gc beside a run ------------------------------
new_repo "$scratch/gone"
cd "$scratch/gone"
# A checked-out worktree (an overlay one says "list ...: No such file or directory" instead).
cat >"$scratch/gone.toml" <<EOF
[run]
workspaces = "worktree"

[[task]]
id = "victim"
policy = "$policy"
run = ["sh", "-c", "echo before > v.txt; while [ ! -e \$CORRAL_INPUTS/go ]; do sleep 0.05; done; echo after > w.txt"]

[[task]]
id = "bystander"
policy = "$policy"
run = ["sh", "-c", "echo fine > ok.txt"]
EOF
"$corral" run "$scratch/gone.toml" >"$scratch/gone.log" 2>&1 &
pid=$!
for _ in $(seq 200); do
  run=$(ls .git/corral/runs 2>/dev/null | head -1)
  [ -n "$run" ] && [ -e ".git/corral/worktrees/$run/victim/v.txt" ] && break
  sleep 0.05
done
rm -rf ".git/corral/worktrees/$run/victim"
touch ".git/corral/runs/$run/inputs/victim/go"
wait "$pid"
status=$?
check "a deleted worktree fails its task, not the run" 0 test "$status" -eq 1
cp "$scratch/gone.log" "$scratch/out"
contains "and says which worktree" out "victim: failed (commit: stage changes in $PWD/.git/corral/worktrees/$run/victim: failed to open directory"
check "the other task is merged" 0 git cat-file -e "corral/$run/merged:ok.txt"
check "git fsck --strict after a deleted worktree" 0 git fsck --strict
check "audit verify after a deleted worktree" 0 "$corral" audit verify "$run"

new_repo "$scratch/gc"
cd "$scratch/gc"
for i in $(seq 1 8); do
  printf '[[task]]\nid = "g%s"\npolicy = "%s"\nrun = ["sh", "-c", "sleep 0.2; echo %s > g%s.txt"]\n\n' \
    "$i" "$policy" "$i" "$i" >>"$scratch/gc.toml"
done
# (Not --prune=now: that deletes the objects of any writer between its object and its ref, git's
# own included; gc's default grace period is what makes gc safe beside writers.)
(for _ in $(seq 30); do git gc --quiet 2>/dev/null; git pack-refs --all 2>/dev/null; done) &
gc=$!
check "a run beside a looping git gc" 0 "$corral" run "$scratch/gc.toml" -j 4
wait "$gc"
run=$(ls .git/corral/runs | head -1)
check "every task of it merged" 0 bash -c "for i in \$(seq 1 8); do git cat-file -e corral/$run/merged:g\$i.txt || exit 1; done"
check "git fsck --strict after gc" 0 git fsck --strict

# --- a full disk, and a read-only run directory, in a private mount namespace -------------------
if [ "$(id -u)" -eq 0 ]; then ns=(unshare -m); else ns=(unshare -Urm); fi
cat >"$scratch/disk.sh" <<'EOF'
set -u
corral=$1 dir=$2 policy=$3
mount -t tmpfs -o size=3m tmpfs "$dir" || exit 90
cd "$dir"
git -c init.defaultBranch=main init -q r && cd r && echo a >a && git add a &&
  git -c user.name=t -c user.email=t@t commit -qm base
cat >../plan.toml <<P
[[task]]
id = "filler"
policy = "$policy"
run = ["sh", "-c", "echo kept > kept.txt; head -c 20000000 /dev/zero > big.bin"]
P
"$corral" run ../plan.toml >../run.out 2>&1
echo "exit $?" >>../run.out
run=$(ls .git/corral/runs)
echo "worktree: $(cat .git/corral/worktrees/$run/filler/kept.txt)" >>../run.out
rm -f .git/corral/worktrees/$run/filler/big.bin
"$corral" audit verify "$run" >>../run.out 2>&1 && echo "verify: ok" >>../run.out
"$corral" status "$run" >>../run.out 2>&1 && echo "status: ok" >>../run.out
git fsck --strict >/dev/null 2>&1 && echo "fsck: ok" >>../run.out
cp ../run.out "$dir/../disk.out" 2>/dev/null || cp ../run.out /dev/stdout
EOF
mkdir -p "$scratch/disk/mnt"
"${ns[@]}" bash "$scratch/disk.sh" "$corral" "$scratch/disk/mnt" "$policy" >"$scratch/disk.stdout" 2>&1
cp "$scratch/disk/disk.out" "$scratch/out" 2>/dev/null || cp "$scratch/disk.stdout" "$scratch/out"
contains "a full disk is named" out "No space left on device"
contains "the run stops with exit 1" out "exit 1"
contains "the worktree keeps what the agent wrote" out "worktree: kept"
contains "the events log stays readable and intact" out "verify: ok"
contains "status reads the run back" out "status: ok"
contains "git fsck --strict after a full disk" out "fsck: ok"

cat >"$scratch/ro.sh" <<'EOF'
set -u
corral=$1 dir=$2 policy=$3
cd "$dir"
git -c init.defaultBranch=main init -q r && cd r && echo a >a && git add a &&
  git -c user.name=t -c user.email=t@t commit -qm base
# The host signals the first task through its worktree: an overlay's agent may never see a file
# made beneath it, so a checked-out worktree.
cat >../plan.toml <<P
[run]
workspaces = "worktree"

[[task]]
id = "first"
policy = "$policy"
run = ["sh", "-c", "while [ ! -e go ]; do sleep 0.05; done; rm go; echo 1 > one.txt"]

[[task]]
id = "second"
policy = "$policy"
depends_on = ["first"]
run = ["sh", "-c", "echo 2 > two.txt"]
P
"$corral" run ../plan.toml >../run.out 2>&1 &
pid=$!
for _ in $(seq 200); do run=$(ls .git/corral/runs 2>/dev/null); [ -n "$run" ] && [ -d .git/corral/runs/$run/inputs/first ] && [ -e .git/corral/runs/$run/logs/first.log ] && break; sleep 0.05; done
# The run directory turns read-only while the first task waits (its signal comes through its
# worktree, outside the run directory); a mount that meets a busy moment is tried again.
for _ in $(seq 50); do
  mount --bind .git/corral/runs/$run .git/corral/runs/$run 2>>../mount.err && break
  sleep 0.1
done
mount -o remount,bind,ro .git/corral/runs/$run
touch .git/corral/worktrees/$run/first/go
wait $pid
echo "exit $?" >>../run.out
umount .git/corral/runs/$run
"$corral" audit verify "$run" >>../run.out 2>&1 && echo "verify: ok" >>../run.out
git fsck --strict >/dev/null 2>&1 && echo "fsck: ok" >>../run.out
cat ../run.out
EOF
mkdir -p "$scratch/ro"
"${ns[@]}" bash "$scratch/ro.sh" "$corral" "$scratch/ro" "$policy" >"$scratch/out" 2>&1
contains "a read-only run directory is named" out "Read-only file system"
contains "the events log stays intact" out "verify: ok"
contains "git fsck --strict after a read-only run directory" out "fsck: ok"
sed 's/^/  ro | /' "$scratch/out" | head -12
finish
