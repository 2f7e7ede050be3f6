#!/usr/bin/env bash
# Malformed input: every file in tests/malformed/ (broken policies and plans: wrong types,
# unknown keys, cycles, huge values, invalid UTF-8) and a plan with a 10 MB string give exit 2
# and an error that names FILE:LINE:COL, and a broken plan leaves no run state behind.
# Usage: malformed_test.sh CORRAL SOURCE_DIR
set -u
corral=$1
src=$2
passed=0 failed=0
scratch=$(mktemp -d /tmp/corral-malformed-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
git init -q -b main "$scratch/repo"
git -C "$scratch/repo" -c user.name=t -c user.email=t@example.com commit -q --allow-empty -m base

expect_refusal() {  # expect_refusal FILE COMMAND...
  local file=$1
  shift
  "$@" >"$scratch/out" 2>"$scratch/err"
  local status=$?
  # The message names the file (as given), a line and a column.
  if [ "$status" -eq 2 ] && grep -qE "^(corral: )?$(printf '%s' "$file" | sed 's/[.[\*^$/]/\\&/g'):[0-9]+:[0-9]+: " "$scratch/err" &&
     [ ! -e "$scratch/repo/.git/corral/runs" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $file: exit $status"
    head -c 600 "$scratch/err" | sed 's/^/  err: /'
    [ -e "$scratch/repo/.git/corral/runs" ] && echo "  and it created run state"
  fi
}

for f in "$src"/tests/malformed/policy/*.toml; do
  expect_refusal "$f" "$corral" policy check "$f"
done
for f in "$src"/tests/malformed/plan/*.toml; do
  expect_refusal "$f" "$corral" run "$f" --repo "$scratch/repo"
done
# A 10 MB string, in a policy and in a plan.
head -c 10000000 /dev/zero | tr '\0' a >"$scratch/long"
{ printf 'description = "'; cat "$scratch/long"; printf '"\nnmae = 1\n'; } >"$scratch/long-policy.toml"
expect_refusal "$scratch/long-policy.toml" "$corral" policy check "$scratch/long-policy.toml"
{ printf '[[task]]\nid = "a"\npolicy = "%s/policies/default.toml"\nrun = ["true"]\nprompt = "' "$src"
  cat "$scratch/long"; printf '"\nretires = 1\n'; } >"$scratch/long-plan.toml"
expect_refusal "$scratch/long-plan.toml" "$corral" run "$scratch/long-plan.toml" --repo "$scratch/repo"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
