#!/usr/bin/env bash
# Real agent CLIs in corral's sandboxes: Claude Code and Codex (npm packages, pinned in
# tests/agents/package.json and installed there by ./build.sh test) start under the shipped
# policies, and a request to an API host the policy does not allow fails at the proxy.
# Usage: agents_test.sh CORRAL SOURCE_DIR   (CORRAL_AGENTS_DIR overrides SOURCE_DIR/tests/agents)
set -u
corral=$1
src=$2
agents=${CORRAL_AGENTS_DIR:-$src/tests/agents}
scratch=$(mktemp -d /tmp/corral-agents-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
. "$(dirname "$0")/checks.sh"

if [ ! -x "$agents/node_modules/.bin/claude" ] || [ ! -x "$agents/node_modules/.bin/codex" ]; then
  echo "FAIL: no agent CLIs in $agents/node_modules: run npm ci --ignore-scripts --prefix tests/agents"
  exit 1
fi


# A user without a memory cgroup of their own gets corral's refusal for policies with
# limits.memory (it never runs them with less than they ask); those checks then run under a copy
# of the policy without that one limit.
memory_cgroup=yes
"$corral" exec --policy "$src/policies/code_implementer.toml" -- true 2>"$scratch/probe" ||
  grep -q "limits.memory needs a memory cgroup" "$scratch/probe" && [ "$(id -u)" -ne 0 ] &&
  memory_cgroup=no
policy_file() {  # policy_file NAME: the shipped policy, or its copy without limits.memory
  if [ "$memory_cgroup" = yes ]; then
    echo "$src/policies/$1.toml"
  else
    sed '/^memory = /d' "$src/policies/$1.toml" >"$scratch/$1.toml"
    echo "$scratch/$1.toml"
  fi
}
if [ "$memory_cgroup" = no ]; then
  check "without a memory cgroup, code_implementer is refused" 125 \
    "$corral" exec --policy "$src/policies/code_implementer.toml" --cwd "$agents" -- true
  contains "the refusal names limits.memory" err "limits.memory needs a memory cgroup"
fi

# The agents' folder is the workspace: the CLIs run from it, as a project's own tools would.
for policy in default offline-build code_implementer; do
  file=$(policy_file "$policy")
  check "claude starts under $policy" 0 "$corral" exec --policy "$file" \
    --cwd "$agents" -- node_modules/.bin/claude --version
  contains "claude says its version under $policy" out "(Claude Code)"
  check "codex starts under $policy" 0 "$corral" exec --policy "$file" \
    --cwd "$agents" -- node_modules/.bin/codex --version
  contains "codex says its version under $policy" out "codex-cli "
done
implementer=$(policy_file code_implementer)

# Claude Code pointed at an API host that code_implementer does not allow: the proxy refuses the
# tunnel and the CLI gives up at once (its retries off) instead of hanging. The timeout inside
# only bounds a regression; it is not a measurement.
check "claude fails at the proxy" 0 "$corral" exec -v --policy "$implementer" \
  --cwd "$agents" -- sh -c 'ANTHROPIC_BASE_URL=https://api.example.org ANTHROPIC_API_KEY=sk-test \
    CLAUDE_CODE_MAX_RETRIES=0 timeout 60 node_modules/.bin/claude -p hello; echo "claude exit $?"'
contains "claude names the refusal" out "the proxy refused the tunnel"
contains "claude ends on its own, with an error" out "claude exit 1"
contains "the proxy recorded it" err "CONNECT api.example.org:443 refused: the policy 'code_implementer' does not allow api.example.org:443 (network.egress)"

# Codex with a provider on a host the policy does not allow: every attempt is refused at once.
# Codex first calls other hosts (github.com, chatgpt.com; also refused) and then keeps
# reconnecting to its provider, so the test waits for the proxy's record of the provider's host
# and then stops corral, which ends the sandbox. On a loaded machine Codex can take well over
# 15 s to get that far; the 120 s inside only bounds a regression, it is not a measurement.
"$corral" exec -v --policy "$implementer" \
  --cwd "$agents" -- sh -c 'OPENAI_API_KEY=sk-test timeout 120 node_modules/.bin/codex exec \
    --skip-git-repo-check -c model_provider=\"denied\" \
    -c "model_providers.denied={name=\"denied\", base_url=\"https://api.example.org/v1\", env_key=\"OPENAI_API_KEY\", wire_api=\"responses\", request_max_retries=0, stream_max_retries=0}" \
    hello >/dev/null 2>&1; true' >"$scratch/out" 2>"$scratch/err" &
codex_corral=$!
for _ in $(seq 1200); do
  grep -q 'api.example.org' "$scratch/err" && break
  kill -0 "$codex_corral" 2>/dev/null || break
  sleep 0.1
done
kill -TERM "$codex_corral" 2>/dev/null
wait "$codex_corral"
contains "the proxy refused codex's API host" err "CONNECT api.example.org:443 refused: the policy 'code_implementer' does not allow api.example.org:443 (network.egress)"
if grep ' allowed (' "$scratch/err" | grep -q 'api.example.org'; then
  failed=$((failed + 1))
  echo "FAIL: codex reached the host the policy does not allow"
else
  passed=$((passed + 1))
fi

finish
