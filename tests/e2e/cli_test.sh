#!/usr/bin/env bash
# End-to-end checks of the corral binary's command line: exit codes and output.
# Usage: cli_test.sh CORRAL SOURCE_DIR
set -u
corral=$1
src=$2
scratch=$(mktemp -d /tmp/corral-cli-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
. "$(dirname "$0")/checks.sh"


check "version" 0 "$corral" --version
contains "version" out "corral "
# corral defines only the command its first argument names; without one, every command.
check "help" 0 "$corral" --help
for c in exec run resume approve status runs logs path report merge audit policy export proxy \
  clean doctor demo; do
  contains "help lists $c" out "  $c "
done
check "a command's help" 0 "$corral" exec --help
contains "a command's help shows its options" out "--policy"
check "a command's unknown flag" 2 "$corral" status --frobnicate
contains "a command's unknown flag is named" err "--frobnicate"

check "every shipped policy is valid" 0 "$corral" policy check "$src"/policies/*.toml
for f in "$src"/policies/*.toml; do
  contains "policy check $(basename "$f")" out "$f: ok: "
done

printf '[limits]\nwall_time = "soon"\n' >"$scratch/bad.toml"
check "a bad policy is exit 2" 2 "$corral" policy check "$scratch/bad.toml"
contains "a bad policy names file, line, column and key" err \
  "$scratch/bad.toml:2:13: limits.wall_time: 'soon' is not a duration (examples: 90s, 30m, 1h)"

check "a missing policy file is exit 2" 2 "$corral" exec --policy "$scratch/none.toml" -- true
contains "a missing policy file is named" err "corral: $scratch/none.toml: No such file or directory"
# corral exec starts its sandbox helper before it reads the policy: a bad one still says only
# why, and the helper ends with corral (a pipe that one kept open would never reach its end).
check "exec with a bad policy is exit 2" 2 timeout 20 bash -o pipefail -c \
  "'$corral' exec --policy '$scratch/bad.toml' -- true 2>&1 | cat"
contains "exec names the bad policy's file, line, column and key" out \
  "$scratch/bad.toml:2:13: limits.wall_time: 'soon' is not a duration (examples: 90s, 30m, 1h)"
check "exec with a bad policy says one line" 0 test "$(wc -l <"$scratch/out")" -eq 1

check "policy export as an OCI seccomp profile" 0 "$corral" policy export "$src"/policies/default.toml --format oci-seccomp
contains "the profile allows by default" out '"defaultAction": "SCMP_ACT_ALLOW"'
contains "the profile denies ptrace" out '"ptrace"'
cp "$scratch/out" "$scratch/profile.json"
check "the profile is JSON" 0 python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$scratch/profile.json"
check "policy export of an unknown format" 2 "$corral" policy export "$src"/policies/default.toml --format yaml
contains "policy export names the formats" err "(supported: oci-seccomp, bpf)"
check "exec needs a command" 2 "$corral" exec
check "unknown command" 2 "$corral" frobnicate
check "unknown flag" 2 "$corral" exec --frobnicate -- true

mkdir "$scratch/ws"
check "exec with the built-in default policy" 0 "$corral" exec --cwd "$scratch/ws" -- sh -c 'echo hi > f; cat f'
contains "exec output passes through" out "hi"

check "an injected secret that is not set is refused" 125 \
  env -u DEPLOY_TOKEN "$corral" exec --policy "$src/policies/deployment_agent.toml" --cwd "$scratch/ws" -- true
contains "the refusal says why" err "deployment_agent.toml: secrets.inject.DEPLOY_TOKEN: is not set in corral's environment or --secrets-file"
# Without its memory limit: an unprivileged user may have no memory cgroup to give it.
sed '/^memory = /d' "$src/policies/deployment_agent.toml" >"$scratch/deploy.toml"
check "the agent holds a placeholder, never the token" 0 \
  env DEPLOY_TOKEN=tok-3a9f1c "$corral" exec --policy "$scratch/deploy.toml" --cwd "$scratch/ws" -- \
  sh -c 'case "$DEPLOY_TOKEN" in corral-inject-DEPLOY_TOKEN-*) echo placeholder;; *) echo "$DEPLOY_TOKEN";; esac'
contains "it sees the placeholder" out "placeholder"

# corral clean on task branches made with the git CLI.
repo="$scratch/repo"
git init -q -b main "$repo"
git -C "$repo" -c user.name=t -c user.email=t@x commit -q --allow-empty -m base
git -C "$repo" branch corral/r1/merged-away
git -C "$repo" checkout -q -b corral/r1/unique
git -C "$repo" -c user.name=t -c user.email=t@x commit -q --allow-empty -m "only here"
git -C "$repo" checkout -q main
check "clean needs a run or --all" 2 "$corral" clean --repo "$repo"
check "clean rejects a bad run id" 2 "$corral" clean --repo "$repo" "r/1"
check "clean --dry-run" 0 "$corral" clean --repo "$repo" r1 --dry-run
contains "clean --dry-run names what it would remove" out "would remove corral/r1/merged-away (reachable from main)"
contains "clean --dry-run names what it keeps" out "kept corral/r1/unique (its work is on no other branch)"
check "clean" 0 "$corral" clean --repo "$repo" r1
contains "clean removes" out "removed corral/r1/merged-away (reachable from main)"
check "clean kept the unique branch" 0 git -C "$repo" rev-parse --verify -q corral/r1/unique
check "clean --force archives" 0 "$corral" clean --repo "$repo" --all --force
contains "clean --force says where" out "archived corral/r1/unique (refs/corral/archive/r1/unique)"
check "the archive holds the work" 0 git -C "$repo" rev-parse --verify -q refs/corral/archive/r1/unique

check "doctor" 0 "$corral" doctor --json
cp "$scratch/out" "$scratch/doctor.json"
check "doctor: the essentials work, and Landlock where CI requires every feature" 0 python3 -c '
import json, os, sys
d = json.load(open(sys.argv[1]))
checks = {c["name"]: c for c in d["checks"]}
assert d["ready"], d
for name in ("user namespaces", "seccomp with user notification"):
    assert checks[name]["ok"], checks[name]
if os.environ.get("CORRAL_REQUIRE_FEATURES") == "1":
    assert checks["Landlock"]["ok"], checks["Landlock"]
# ./build.sh installs QEMU and extracts the guest kernel: the vm target is ready here.
vm = checks["start tasks in a QEMU VM (target vm)"]
assert vm["ok"] and ("TCG" in vm["detail"] or "KVM" in vm["detail"]), vm
' "$scratch/doctor.json"
check "doctor in text" 0 "$corral" doctor
contains "doctor names Landlock" out "Landlock: "
contains "doctor says it works" out "corral exec and corral run work here."
contains "doctor says what a TDX launch needs" out "launch a TDX trust domain (target tdx): "

printf 'target = "vm"\n[tools]\nallow = ["git"]\n' >"$scratch/vmtools.toml"
check "policy check of a vm policy with tools.allow" 0 "$corral" policy check "$scratch/vmtools.toml"
if [ -s "$scratch/err" ]; then
  failed=$((failed + 1)); echo "FAIL: policy check warned about a vm policy it can honour"; cat "$scratch/err"
else passed=$((passed + 1)); fi

printf 'name = "td"\ntarget = "tdx"\n' >"$scratch/tdx.toml"
check "target tdx is refused before anything runs" 125 "$corral" exec --policy "$scratch/tdx.toml" -- true
contains "the refusal says what the host lacks (or that VMs are not started yet)" err \
  "$scratch/tdx.toml: target: \"tdx\": this host can"
check "demo" 0 "$corral" demo
contains "demo" out "corral demo: every fence held."

# A workspace that is not a git repository gets a .git placeholder for the protected
# .git/config and .git/hooks while the sandbox runs; a kill -9 of corral still removes it (the
# helper ends the sandbox, then the placeholder).
mkdir "$scratch/plainws"
marker="59.$$"  # this test's sandbox alone
"$corral" exec --cwd "$scratch/plainws" -- sleep "$marker" &
exec_pid=$!
for _ in $(seq 600); do pgrep -f "^sleep $marker\$" >/dev/null && break; sleep 0.05; done
check "the sandbox runs" 0 pgrep -f "^sleep $marker\$"
check "the placeholder is there while the sandbox runs" 0 test -d "$scratch/plainws/.git"
kill -9 "$exec_pid"
wait "$exec_pid" 2>/dev/null
for _ in $(seq 600); do
  [ -e "$scratch/plainws/.git" ] || pgrep -f "^sleep $marker\$" >/dev/null || break
  sleep 0.05
done
check "after a kill -9 of corral, no placeholder is left" 1 test -e "$scratch/plainws/.git"
check "and no sandbox either" 1 pgrep -f "^sleep $marker\$"

finish
