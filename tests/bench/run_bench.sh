#!/usr/bin/env bash
# corral run's own cost and the "more agents is slower" trap, in one run each.
#  1. Overhead: 20 independent tasks of 2 s at -j 4 against the ideal (5 waves of 2 s) plus the
#     measured per-task launch cost; a DAG against its critical path plus launch costs.
#  2. The concurrency trap: 22 agents, each making 10 requests to a mock model API on loopback,
#     through corral's egress proxy; the API serves 5 requests at once and answers 429 with
#     Retry-After beyond that. Agents retry as API SDKs do by default (twice, after 1 s and 2 s)
#     and then give up with exit 75, losing their progress (corral retries them later, as a
#     crashed agent session is restarted). Compares all at once
#     (-j 22), fixed waves of 4 (one run per wave), a sliding -j 4, and -j auto.
# Usage: tests/bench/run_bench.sh [CORRAL]
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$(pwd)
corral=$(realpath "${1:-build/launcher/corral}")
work=$(mktemp -d /tmp/corral-runbench-XXXXXX)
api_pid=""
trap '[ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
export CORRAL_AUDIT_KEY=$work/audit-key.pem

fresh_repo() {
  rm -rf "$work/repo"
  git init -q -b main "$work/repo"
  git -C "$work/repo" -c user.name=bench -c user.email=bench@example.com commit -q --allow-empty -m base
}
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }

# timed PLAN ARGS...: runs the plan in a fresh repository, prints the wall seconds.
timed() {
  fresh_repo
  local t0 t1
  t0=$(now)
  "$corral" run "$1" --repo "$work/repo" "${@:2}" >/dev/null 2>"$work/run.err" || true
  t1=$(now)
  calc "$t1 - $t0"
}

task() {  # task ID POLICY SCRIPT [DEPS]
  printf '[[task]]\nid = "%s"\npolicy = "%s"\nrun = ["sh", "-c", "%s"]\n%s\n' "$1" "$2" "$3" "${4:-}"
}

default=$src/policies/default.toml

# --- 1. Overhead ---
if [ -z "${TRAP_ONLY:-}" ]; then
: >"$work/true.toml"
: >"$work/sleep.toml"
for i in $(seq 1 20); do
  task "t$i" "$default" "true" >>"$work/true.toml"
  task "t$i" "$default" "sleep 2" >>"$work/sleep.toml"
done
launch_total=$(timed "$work/true.toml" -j 1)
launch=$(calc "$launch_total / 20")
sleep_wall=$(timed "$work/sleep.toml" -j 4)
ideal=$(calc "5 * (2 + $launch)")
{
  task impl "$default" "sleep 2"
  task tests "$default" "sleep 2" 'depends_on = ["impl"]'
  task docs "$default" "sleep 3" 'depends_on = ["impl"]'
  task review "$default" "sleep 2" 'depends_on = ["tests", "docs"]'
} >"$work/dag.toml"
dag_wall=$(timed "$work/dag.toml" -j 4)
critical=$(calc "7 + 3 * $launch")
echo "corral run overhead, one run, as $(id -un):"
echo "  per-task launch cost (20 tasks of 'true' at -j 1): $(calc "$launch * 1000") ms"
echo "  20 tasks of 2 s at -j 4: $sleep_wall s; ideal 5 x (2 s + launch) = $ideal s:" \
  "$(calc "$sleep_wall / $ideal")x (target: at most 1.05x)"
echo "  DAG impl -> (tests 2 s, docs 3 s) -> review: $dag_wall s; critical path 7 s + 3 launches =" \
  "$critical s: $(calc "$dag_wall / $critical")x (target: at most 1.05x)"

fi

# --- 2. The concurrency trap ---
/usr/bin/python3 "$src/tests/bench/mock_api.py" --capacity 5 --service 0.3 \
  --port-file "$work/api.port" --stats-file "$work/api.stats" &
api_pid=$!
for _ in $(seq 100); do [ -f "$work/api.port" ] && break; sleep 0.05; done
port=$(cat "$work/api.port")
printf '[network]\negress = ["localhost:%s"]\n[env]\npass = ["PATH"]\n' "$port" >"$work/api.toml"
agent="n=0; while [ \$n -lt 10 ]; do r=0; while :; do"
agent+=" c=\$(curl -s -o /dev/null -w '%{http_code}' http://localhost:$port/v1/messages);"
agent+=" [ \$c = 200 ] && break; r=\$((r+1));"
agent+=" if [ \$r -gt 2 ]; then echo 1 > \$CORRAL_RETRY_AFTER; exit 75; fi;"
agent+=" sleep \$((1 << (r-1))); done; n=\$((n+1)); done"
: >"$work/trap.toml"
for i in $(seq 1 22); do task "a$i" "$work/api.toml" "$agent" >>"$work/trap.toml"; done
# Waves: the same tasks, four per run, one run after another.
for w in $(seq 0 5); do
  : >"$work/wave$w.toml"
  for i in $(seq $((w * 4 + 1)) $((w * 4 + 4))); do
    [ "$i" -le 22 ] && task "a$i" "$work/api.toml" "$agent" >>"$work/wave$w.toml"
  done
done

declare -A wall
for mode in all waves sliding auto; do
  t0=$(now)
  case $mode in
    all) timed "$work/trap.toml" -j 22 >/dev/null ;;
    waves) for w in $(seq 0 5); do timed "$work/wave$w.toml" -j 4 >/dev/null; done ;;
    sliding) timed "$work/trap.toml" -j 4 >/dev/null ;;
    auto) timed "$work/trap.toml" -j auto >/dev/null ;;
  esac
  wall[$mode]=$(calc "$(now) - $t0")
done
kill "$api_pid"
wait "$api_pid" 2>/dev/null || true
api_pid=""
best=${wall[waves]}
for mode in sliding; do
  awk "BEGIN { exit !(${wall[$mode]} < $best) }" && best=${wall[$mode]}
done
echo "the concurrency trap: 22 agents x 10 requests, API serves 5 at once (0.3 s each), one run:"
printf '  %-28s %8s s\n' "all at once (-j 22)" "${wall[all]}" "fixed waves of 4" "${wall[waves]}" \
  "sliding window (-j 4)" "${wall[sliding]}" "-j auto" "${wall[auto]}"
echo "  -j auto vs the best fixed setting: $(calc "${wall[auto]} / $best")x (target: at most 0.9x)"
echo "  -j auto vs all at once: $(calc "${wall[auto]} / ${wall[all]}")x (target: at most 0.5x)"
echo "  (the ideal: 22 x 10 x 0.3 s / 5 = 13.2 s)"
