#!/usr/bin/env bash
# corral's HTML report in real headless Chromium (Debian's chromium, driven by playwright-core
# from tests/html): a run with a conflict, a failure, a skipped task, a refused connection, a
# secret and output that looks like markup; then a 200-task run. Each report renders without
# console errors or network requests, shows every task, and leaves a screenshot in ARTIFACTS.
# Usage: report_html_test.sh CORRAL SOURCE_DIR ARTIFACTS
set -u
corral=$1
src=$2
artifacts=$3
html=$src/tests/html
scratch=$(mktemp -d /tmp/corral-html-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
. "$(dirname "$0")/checks.sh"
mkdir -p "$artifacts"

if [ ! -d "$html/node_modules/playwright-core" ]; then
  echo "FAIL: no playwright-core in $html/node_modules: run npm ci --ignore-scripts --prefix tests/html"
  exit 1
fi
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "FAIL: no Chromium at ${CHROMIUM:-/usr/bin/chromium}: apt-get install chromium"
  exit 1
fi
git_() { git -c user.name=t -c user.email=t@t -c init.defaultBranch=main "$@"; }
git_ init -q "$scratch/repo"
cd "$scratch/repo"
echo base >a.txt
git_ add a.txt && git_ commit -qm base

printf 'name = "net"\n[network]\negress = ["localhost:9"]\n[secrets]\nenv = ["TOKEN"]\n' >net.toml
cat >plan.toml <<PLAN
[[task]]
id = "one"
policy = "$src/policies/default.toml"
run = ["sh", "-c", "echo one > a.txt; echo '<script>document.title=1</script><b>bold</b>'; printf '{\"ok\": 1}' > \$CORRAL_OUTPUT"]

[[task]]
id = "two"
policy = "$src/policies/default.toml"
run = ["sh", "-c", "echo two > a.txt; echo two > b.txt"]

[[task]]
id = "three"
policy = "$src/policies/default.toml"
depends_on = ["one"]
run = ["sh", "-c", "exit 4"]

[[task]]
id = "four"
policy = "$src/policies/default.toml"
depends_on = ["three"]
run = ["true"]

[[task]]
id = "net"
policy = "net.toml"
run = ["sh", "-c", "echo token is \$TOKEN; curl -s -o /dev/null http://example.com/ || true"]
PLAN
TOKEN=hunter2-html-secret "$corral" run plan.toml >"$scratch/run.out" 2>&1
check "the report as HTML" 0 "$corral" report --format html
cp "$scratch/out" "$scratch/report.html"
check "report.html is the run's" 0 bash -c "cmp '$scratch/report.html' .git/corral/runs/*/report.html"
check "the secret is not in the HTML" 1 grep -q hunter2-html-secret "$scratch/report.html"
contains "the HTML says it was redacted" report.html "token is [REDACTED:TOKEN]"
contains "output that looks like markup is text" report.html "&lt;script&gt;document.title=1&lt;/script&gt;"
contains "the refused connection is there" report.html "<tr class='refused'><td>refused</td><td>GET</td><td><code>example.com:80</code>"
contains "the failure and its exit" report.html "exited with status 4"
contains "the skip and its reason" report.html "dependency &#39;three&#39; failed"
contains "the conflict matrix names the colliding path" report.html "<code>one</code> and <code>two</code> both changed <code>a.txt</code>"
contains "the result" report.html "&quot;ok&quot;: 1"
printf 'one\ntwo\nthree\nfour\nnet\n' >"$scratch/ids"
check "it renders in Chromium without errors and shows every task" 0 \
  node "$html/check_report.mjs" "$scratch/report.html" "$scratch/ids" "$artifacts/report-small.png"
cat "$scratch/out"
check "--format of another kind" 2 "$corral" report --format pdf
contains "names the formats" err "--format: 'pdf' is not one of json, md, html"

# 200 tasks in 20 layers: the report stays usable.
python3 - "$src" >"$scratch/big.toml" <<'PY'
import sys
for i in range(200):
    print(f'[[task]]\nid = "t{i:03d}"\npolicy = "{sys.argv[1]}/policies/default.toml"')
    print(f'run = ["sh", "-c", "echo {i} > f{i}.txt"]')
    if i >= 10:
        print(f'depends_on = ["t{i-10:03d}"]')
    print()
PY
check "a 200-task run" 0 "$corral" run "$scratch/big.toml" -j 8
check "its HTML report" 0 "$corral" report --format html
cp "$scratch/out" "$scratch/big.html"
python3 -c 'print("\n".join(f"t{i:03d}" for i in range(200)))' >"$scratch/big-ids"
check "200 tasks render in Chromium without errors, every one shown" 0 \
  node "$html/check_report.mjs" "$scratch/big.html" "$scratch/big-ids" "$artifacts/report-200.png"
cat "$scratch/out"
echo "report.html of 200 tasks: $(wc -c <"$scratch/big.html") bytes; screenshots in $artifacts"
finish
