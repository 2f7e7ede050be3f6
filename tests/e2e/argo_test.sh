#!/usr/bin/env bash
# `corral export argo`: the manifests pass the Kubernetes and Argo Workflows schemas
# (kubernetes-models, @kubernetes-models/argo-workflows from tests/k8s), their pods do what a run
# does when executed as Argo would (argo_pods.py: clone at the base, dependencies merged, agent,
# commit with trailers, push, then the exit handler's merge in plan order), and `corral proxy`,
# the pods' egress sidecar, allows and refuses as the policy says, and puts secrets.inject's
# value into the requests of a pod's agent, which holds only a placeholder.
# Usage: argo_test.sh CORRAL SOURCE_DIR
set -u
corral=$1
src=$2
k8s=$src/tests/k8s
scratch=$(mktemp -d /tmp/corral-argo-XXXXXX)
trap 'kill $server_pid $tls_pid $proxy_pid 2>/dev/null; rm -rf "$scratch"' EXIT
server_pid= tls_pid= proxy_pid=
. "$(dirname "$0")/checks.sh"

if [ ! -d "$k8s/node_modules/kubernetes-models" ]; then
  echo "FAIL: no schema validators in $k8s/node_modules: run npm ci --ignore-scripts --prefix tests/k8s"
  exit 1
fi
git_() { git -c user.name=t -c user.email=t@t -c init.defaultBranch=main "$@"; }

# An HTTPS server on loopback, the API of the secrets.inject task: it logs the credentials each
# request carried. Its certificate is the trust store of the sidecars' "image".
mkdir "$scratch/api" && echo "api says hi" >"$scratch/api/index.html"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -addext subjectAltName=DNS:localhost \
  -days 1 -keyout "$scratch/key.pem" -out "$scratch/cert.pem" 2>/dev/null
python3 "$src/tests/sandbox/http_server.py" --root "$scratch/api" --port-file "$scratch/tls-port" \
  --tls "$scratch/cert.pem" "$scratch/key.pem" &
tls_pid=$!
for _ in $(seq 50); do [ -s "$scratch/tls-port" ] && break; sleep 0.1; done
tls_port=$(cat "$scratch/tls-port")
inject_value=inj-s3cret-5d1f08

# A repository whose origin is a bare repository on disk, as a cluster's git server would be.
git_ init -q --bare "$scratch/origin.git"
git_ init -q "$scratch/repo"
cd "$scratch/repo"
echo base >schema.txt
git_ add schema.txt && git_ commit -qm base
git_ remote add origin "$scratch/origin.git"
git_ push -q origin main
base=$(git rev-parse HEAD)
user_head_before=$(git rev-parse HEAD)

cp "$src/policies/default.toml" "$src/policies/code_implementer.toml" .
sed -e 's/^name = .*/name = "approved_deploy"/' -e '/^\[secrets\]/,/^$/d' \
  -e 's/^\[env\]/[secrets]\nenv = ["DEPLOY_TOKEN"]\n\n[env]/' \
  "$src/policies/deployment_agent.toml" >deploy.toml
cat >plan.toml <<'EOF'
[run]
base = "HEAD"
setup = ["sh", "-c", "echo set up > .setup-ran && rm .setup-ran"]

[[task]]
id = "schema"
policy = "default.toml"
prompt = "Write {{ the schema }} for $(HOME)"
run = ["sh", "-c", "echo v2 > schema.txt && printf '{\"version\": 2}' > \"$CORRAL_OUTPUT\" && test \"$CORRAL_PROMPT\" = 'Write {{ the schema }} for $(HOME)'"]

[[task]]
id = "api"
policy = "default.toml"
depends_on = ["schema"]
env = { MODE = "{{fast}}" }
run = ["sh", "-c", "grep -q v2 schema.txt && cat \"$CORRAL_INPUTS/schema.json\" > api.txt && test \"$MODE\" = '{{fast}}'"]

[[task]]
id = "clash"
policy = "default.toml"
run = ["sh", "-c", "echo v3 > schema.txt"]

[[task]]
id = "broken"
policy = "default.toml"
retries = 1
run = ["sh", "-c", "echo partial > broken.txt; exit 7"]

[[task]]
id = "after_broken"
policy = "default.toml"
depends_on = ["broken"]
run = ["true"]

[[task]]
id = "model"
policy = "code_implementer.toml"
timeout = "90s"
run = ["sh", "-c", "case \"$HTTPS_PROXY\" in http://127.0.0.1:*) echo ok > model.txt;; *) exit 1;; esac"]

[[task]]
id = "deploy"
policy = "deploy.toml"
depends_on = ["api"]
run = ["sh", "-c", "printf %s \"$DEPLOY_TOKEN\" | sha256sum | grep -q 1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0 && echo deployed > deploy.txt"]
EOF
# secrets.inject: the agent calls the API with its placeholder (through the sidecar: the pods'
# NO_PROXY names localhost, which this API is) and keeps what it holds and what it got.
cat >injecting.toml <<EOF
# The API on loopback, with API_KEY injected by the egress proxy.
name = "injecting"
[network]
egress = ["localhost:$tls_port"]
[secrets]
inject = { API_KEY = ["localhost:$tls_port"] }
EOF
cat >>plan.toml <<EOF

[[task]]
id = "inject"
policy = "injecting.toml"
run = ["sh", "-c", "printf %s \\"\$API_KEY\\" > key.txt && env | sort > env.txt && NO_PROXY= no_proxy= curl -sSf -H \\"Authorization: Bearer \$API_KEY\\" https://localhost:$tls_port/index.html?argo > got.txt"]
EOF

check "export argo as YAML" 0 "$corral" export argo plan.toml --profiles "$scratch/profiles"
cp "$scratch/out" "$scratch/wf.yaml"
check "export argo as JSON lines" 0 "$corral" export argo plan.toml --format json
cp "$scratch/out" "$scratch/wf.jsonl"
check "the manifests pass the Kubernetes and Argo schemas, and the YAML equals the JSON" 0 \
  node "$k8s/validate.mjs" "$scratch/wf.yaml" --json "$scratch/wf.jsonl"
contains "every kind validated" out "1 ConfigMap, 5 NetworkPolicy, 1 Workflow: valid"

# The validator is not a check that cannot fail.
sed 's/runAsNonRoot: true/runAsNonRoot: "yes"/' "$scratch/wf.yaml" >"$scratch/bad.yaml"
check "the validator refuses a string where a boolean belongs" 1 node "$k8s/validate.mjs" "$scratch/bad.yaml"
contains "the validator names the field" err "runAsNonRoot must be boolean"
sed 's/^kind: "NetworkPolicy"/kind: "NetworkPolice"/' "$scratch/wf.yaml" >"$scratch/bad.yaml"
check "the validator refuses an unknown kind" 1 node "$k8s/validate.mjs" "$scratch/bad.yaml"

check "what the pods must have" 0 python3 - "$scratch/wf.jsonl" "$base" <<'EOF'
import json, sys
docs = [json.loads(l) for l in open(sys.argv[1])]
wf = docs[-1]
assert wf["kind"] == "Workflow" and wf["metadata"]["annotations"]["corral.dev/base"] == sys.argv[2]
t = {x["name"]: x for x in wf["spec"]["templates"]}
dag = {x["name"]: x for x in t["tasks"]["dag"]["tasks"]}
assert dag["api"]["dependencies"] == ["schema"], dag["api"]
assert dag["after-broken"]["dependencies"] == ["broken"]
assert dag["deploy"]["dependencies"] == ["api", "approve-deploy"], dag["deploy"]
assert "suspend" in t["approve-deploy"], "approval is a suspend step"
assert wf["spec"]["onExit"] == "merge"
for name in ["schema", "api", "clash", "broken", "after-broken", "model", "deploy"]:
    c = t[name]["container"]
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["allowPrivilegeEscalation"] is False, name
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"]["drop"] == ["ALL"], name
    assert sc["seccompProfile"]["type"] == "Localhost" and sc["seccompProfile"]["localhostProfile"].startswith("corral/"), name
    assert t[name]["securityContext"]["runAsNonRoot"] is True
    assert t[name]["metadata"]["annotations"]["corral.dev/task-id"] == name.replace("-", "_")
assert t["broken"]["retryStrategy"]["limit"] == "1"
assert t["model"]["activeDeadlineSeconds"] == 90
assert t["deploy"]["activeDeadlineSeconds"] == 1200
assert t["model"]["container"]["resources"]["limits"]["memory"] == str(4 << 30)
assert [s["name"] for s in t["model"]["sidecars"]] == ["egress-proxy"]
assert t["model"]["sidecars"][0]["command"][:2] == ["corral", "proxy"]
assert {"name": "CORRAL_PROXY", "value": "http://127.0.0.1:3128"} in t["model"]["container"]["env"]
assert "sidecars" not in t["schema"]
# secrets.inject: the value goes to the sidecar alone, which writes the agent's side of the CA
# to a volume that the agent's container mounts read-only.
inj = t["inject"]
sidecar = inj["sidecars"][0]
for s in (sidecar, t["model"]["sidecars"][0]):
    assert s["command"][-2:] == ["--agent-dir", "/var/run/corral-proxy"], s
    assert {"name": "proxy", "mountPath": "/var/run/corral-proxy"} in s["volumeMounts"], s
for name in ("inject", "model"):
    assert {"name": "proxy", "mountPath": "/var/run/corral-proxy", "readOnly": True} in t[name]["container"]["volumeMounts"]
    assert {"name": "proxy", "emptyDir": {}} in t[name]["volumes"]
    assert {"name": "CORRAL_PROXY_DIR", "value": "/var/run/corral-proxy"} in t[name]["container"]["env"]
assert "volumes" not in t["schema"] or {"name": "proxy", "emptyDir": {}} not in t["schema"]["volumes"]
assert sidecar["env"] == [{"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "corral-secrets", "key": "API_KEY"}}}], sidecar
assert not [e for e in inj["container"]["env"] if e["name"] == "API_KEY" or "secretKeyRef" in e.get("valueFrom", {})], inj["container"]["env"]
assert "env" not in t["model"]["sidecars"][0], "a sidecar without secrets.inject holds no secret"
for s in (sidecar, t["model"]["sidecars"][0]):
    assert s["securityContext"]["runAsUser"] == 1001 != t["model"]["securityContext"]["runAsUser"], s
# The kubelet would expand $(VAR) and Argo {{...}} in the pods' scripts.
for name, tmpl in t.items():
    if "container" in tmpl:
        script = tmpl["container"]["command"][2]
        assert "$(" not in script and "{{" not in script, name
token = [e for e in t["deploy"]["container"]["env"] if e["name"] == "DEPLOY_TOKEN"][0]
assert token["valueFrom"]["secretKeyRef"] == {"name": "corral-secrets", "key": "DEPLOY_TOKEN"}
text = open(sys.argv[1]).read()
assert "s3cret" not in text
# What Argo or the kubelet would rewrite travels in the ConfigMap, never in the workflow.
assert "{{ the schema }}" not in json.dumps(wf) and "{{fast}}" not in json.dumps(wf)
assert "$(HOME)" not in json.dumps(wf)
nps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
default_np = [d for n, d in nps.items() if n.startswith("corral-egress-default-")][0]
assert default_np["spec"]["egress"] == [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}], default_np
EOF

for f in "$scratch"/profiles/corral/*.json; do
  name=$(basename "$f" .json)
  policy=${name%-*}
  [ "$policy" = code-implementer ] && policy=code_implementer
  [ "$policy" = approved-deploy ] && continue
  check "--profiles writes $name as policy export does" 0 \
    bash -c "'$corral' policy export $policy.toml --format oci-seccomp | cmp - '$f'"
done

# The pods, run as Argo would.
check "the workflow's pods run" 0 python3 "$src/tests/e2e/argo_pods.py" "$scratch/wf.jsonl" \
  "$scratch/pods" --secret DEPLOY_TOKEN=s3cret --secret API_KEY=$inject_value --corral "$corral" \
  --sidecar-env SSL_CERT_FILE="$scratch/cert.pem" --sidecar-delay 1
cp "$scratch/out" "$scratch/pods.json"
check "each task ends as a run's would" 0 python3 - "$scratch/pods.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["tasks"]
for name in ["schema", "api", "clash", "model", "deploy", "inject"]:
    assert t[name]["exit"] == 0, (name, t[name])
proxy = t["inject"]["sidecars"]["egress-proxy"]
assert proxy["exit"] == 0, proxy
net = [json.loads(l) for l in proxy["stdout"].splitlines()]
assert [(n["decision"], n["task"]) for n in net] == [("allowed", "inject")], net
assert t["broken"]["exit"] == 7 and t["broken"]["tries"] == 2, t["broken"]
assert t["after-broken"].get("skipped"), t["after-broken"]
h = r["exit_handler"]
assert h["exit"] == 1, h   # clash conflicts with schema
assert "merged: schema api model deploy inject" in h["stdout"], h
assert "conflicted: clash" in h["stdout"], h
assert "not merged (failed, skipped or not run): broken after_broken" in h["stdout"], h
EOF
cd "$scratch/origin.git"
for b in schema api clash broken model deploy inject; do
  check "branch corral/wf-test/$b was pushed" 0 git rev-parse -q --verify "refs/heads/corral/wf-test/$b"
done
check "a task that did not run has no branch" 1 git rev-parse -q --verify refs/heads/corral/wf-test/after_broken
check "a failed task's work is kept on its branch" 0 git cat-file -e corral/wf-test/broken:broken.txt
check "the api task saw schema's output in CORRAL_INPUTS" 0 \
  bash -c "test \"\$(git show corral/wf-test/api:api.txt)\" = '{\"version\": 2}'"
check "the merge holds the merged tasks' work" 0 \
  bash -c "git cat-file -e corral/wf-test/merged:api.txt && git cat-file -e corral/wf-test/merged:deploy.txt && git cat-file -e corral/wf-test/merged:model.txt"
check "the merge holds no failed task's work" 128 git cat-file -e corral/wf-test/merged:broken.txt
check "the auto-commit" 0 git log -1 --format=%B corral/wf-test/schema
contains "the commit names the task" out "corral: task schema"
contains "the commit has the run trailer" out "Corral-Run: wf-test"
contains "the commit has the policy trailer" out "Corral-Policy: default@$(sha256sum "$scratch/repo/default.toml" | cut -c1-64)"
check "the task branch starts at the base" 0 git merge-base --is-ancestor "$base" corral/wf-test/schema
check "setup ran and left nothing" 128 git cat-file -e corral/wf-test/schema:.setup-ran
check "git fsck --strict of the origin" 0 git fsck --strict
check "the injecting agent got the API's answer" 0 \
  bash -c "test \"\$(git show corral/wf-test/inject:got.txt)\" = 'api says hi'"
check "the API got the value" 0 grep -qxF "/index.html?argo Bearer $inject_value" "$scratch/api/headers.log"
check "the agent held a placeholder" 0 \
  bash -c "git show corral/wf-test/inject:key.txt | grep -qxE 'corral-inject-API_KEY-[0-9a-f]{24}'"
check "the agent's environment trusts the sidecar's CA" 0 \
  bash -c "git show corral/wf-test/inject:env.txt | grep -qx 'SSL_CERT_FILE=.*/proxy/ca-bundle.pem'"
if git grep -qF "$inject_value" $(git for-each-ref --format='%(refname)') -- ||
  grep -rqF "$inject_value" "$scratch/pods" "$scratch/pods.json"; then
  failed=$((failed + 1))
  echo "FAIL: a branch, a pod's folder or the pods' output holds the injected value"
else
  passed=$((passed + 1))
fi
cd "$scratch/repo"
check "the user's branch is unchanged" 0 test "$(git rev-parse HEAD)" = "$user_head_before"

# Bad input: exit 2, a message that names what is wrong.
git_ init -q "$scratch/noremote"
(cd "$scratch/noremote" && echo x >f && git_ add f && git_ commit -qm x)
check "no --repo-url and no origin" 2 "$corral" export argo plan.toml --repo "$scratch/noremote"
contains "names the flag" err "--repo-url: not given, and the repository has no remote 'origin' to use"
check "--repo-url instead of origin" 0 "$corral" export argo plan.toml --repo "$scratch/noremote" \
  --repo-url https://git.example.com/app.git
contains "the URL is the pods'" out '"https://git.example.com/app.git"'
check "an unknown --format" 2 "$corral" export argo plan.toml --format xml
contains "names the formats" err "--format: 'xml' is not one of yaml, json"
sed 's/policy = "deploy.toml"/policy = "missing.toml"/' plan.toml >bad-plan.toml
check "a missing policy" 2 "$corral" export argo bad-plan.toml
contains "names file, line, column, task" err "bad-plan.toml:43:10: task 'deploy': policy: "
check "an unknown export target" 2 "$corral" export nomad plan.toml

# corral proxy: the sidecar, against a local server the policy allows, and a host it does not.
mkdir "$scratch/www" && echo hello >"$scratch/www/hello.txt"
python3 "$src/tests/sandbox/http_server.py" --root "$scratch/www" --port-file "$scratch/port" &
server_pid=$!
for _ in $(seq 50); do [ -s "$scratch/port" ] && break; sleep 0.1; done
port=$(cat "$scratch/port")
proxy_port=$((20000 + RANDOM % 20000))
printf 'name = "sidecar"\n[network]\negress = ["localhost:%s"]\n' "$port" >"$scratch/sidecar.toml"
# What a previous sidecar of the pod left (a container restarted in the same pod).
mkdir "$scratch/agent"
echo "export STALE=1" >"$scratch/agent/env"
echo "corral proxy: stale" >"$scratch/agent/error"
"$corral" proxy --policy "$scratch/sidecar.toml" --port "$proxy_port" --name t1 \
  --agent-dir "$scratch/agent" >"$scratch/proxy.out" 2>"$scratch/proxy.err" &
proxy_pid=$!
for _ in $(seq 300); do grep -q "on 127.0.0.1" "$scratch/proxy.err" 2>/dev/null && break; sleep 0.1; done
check "the sidecar says it listens" 0 grep -q "on 127.0.0.1:$proxy_port" "$scratch/proxy.err"
check "and wrote the agent's env anew, which sets nothing here" 1 grep -v '^#' "$scratch/agent/env"
check "and no stale error is left" 1 test -e "$scratch/agent/error"
check "an allowed host through the sidecar" 0 curl -sf --proxy "http://127.0.0.1:$proxy_port" \
  "http://localhost:$port/hello.txt"
contains "the server answered" out hello
check "a host the policy does not name" 0 curl -s -o /dev/null -w '%{http_code}' \
  --proxy "http://127.0.0.1:$proxy_port" http://example.com/
contains "refused with 403" out 403
kill -TERM $proxy_pid
wait $proxy_pid
status=$?
proxy_pid=
check "the sidecar stops cleanly on SIGTERM" 0 test "$status" -eq 0
cp "$scratch/proxy.out" "$scratch/out"
contains "the allowed request is recorded" out '"decision":"allowed"'
contains "the refusal is recorded" out '"decision":"refused"'
contains "records name the client" out '"task":"t1"'
check "the proxy needs an allow-list" 2 "$corral" proxy --policy default.toml
contains "and says so" err "network.egress is not an allow-list"
check "secrets.inject needs --agent-dir" 2 env API_KEY=x "$corral" proxy --policy injecting.toml
contains "and names the flag" err "--agent-dir: needed, since injecting.toml has secrets.inject"
mkdir "$scratch/inj"  # as a pod's emptyDir
check "secrets.inject needs the value" 2 env -u API_KEY "$corral" proxy --policy injecting.toml \
  --agent-dir "$scratch/inj"
contains "and names the key" err "injecting.toml: secrets.inject.API_KEY: is not set in corral's environment or --secrets-file"
cp "$scratch/inj/error" "$scratch/out"
contains "and says it to the agent's script in --agent-dir" out "corral proxy: injecting.toml: secrets.inject.API_KEY: is not set"
check "and leaves it no env to start the agent with" 1 test -e "$scratch/inj/env"
# The proxy holding a value is not dumpable: a process of the same user (the agent, where the
# pod's containers share their processes) cannot read its environment. Root reads any process's
# (CAP_SYS_PTRACE), so this climb is tried by the unprivileged run of the suite.
if [ "$(id -u)" -ne 0 ]; then
  mkdir "$scratch/inj2"
  env API_KEY=$inject_value "$corral" proxy --policy injecting.toml --port "$((20000 + RANDOM % 20000))" \
    --agent-dir "$scratch/inj2" >/dev/null 2>&1 &
  inj_pid=$!
  for _ in $(seq 300); do [ -f "$scratch/inj2/env" ] && break; sleep 0.1; done
  sleep 30 &
  control_pid=$!
  check "the control: another process of this user's environment is readable" 0 \
    grep -qz PATH= "/proc/$control_pid/environ"
  check "the proxy's environment, with the value, is not" 2 grep -qz API_KEY= "/proc/$inj_pid/environ"
  kill $control_pid $inj_pid
  wait $control_pid $inj_pid 2>/dev/null
fi
finish
