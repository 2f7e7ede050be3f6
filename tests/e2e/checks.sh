# Shared by the shell end-to-end tests: `check` runs a command and compares its exit status,
# `contains` looks for a text in what it printed, `finish` says the counts and sets the status.
# Source it after setting $scratch (a scratch folder of the test's own).
passed=0 failed=0

check() {  # check NAME EXPECTED_STATUS COMMAND...
  local name=$1 expected=$2
  shift 2
  "$@" >"$scratch/out" 2>"$scratch/err"
  local status=$?
  if [ "$status" -eq "$expected" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $name: exit $status, expected $expected"
    sed 's/^/  out: /' "$scratch/out" | tail -20
    sed 's/^/  err: /' "$scratch/err" | tail -20
  fi
}

contains() {  # contains NAME FILE TEXT
  if grep -qF -- "$3" "$scratch/$2"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $1: $2 lacks '$3'"
    sed 's/^/  | /' "$scratch/$2" | tail -20
  fi
}

finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
