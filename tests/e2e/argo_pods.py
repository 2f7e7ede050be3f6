#!/usr/bin/env python3
"""Runs the pods of a workflow `corral export argo --format json` wrote, the way Argo would,
without a cluster: the DAG in dependency order (dependents of a failed task are not run), each
task's container command with its environment (values, configMapKeyRef from the exported
ConfigMap, secretKeyRef from --secret NAME=VALUE), Argo's {{workflow.name}}, {{inputs...}} and
{{tasks.X.outputs.parameters.result}} substitutions, the output parameter read from its path,
then the exit handler. Suspend templates (approvals) are resumed at once.

The containers' /work and /tmp are folders under ROOT: CORRAL_WORK, CORRAL_OUTPUT,
CORRAL_INPUTS and HOME are pointed there. It prints one JSON object: each task's exit status
and what the exit handler printed.

    argo_pods.py MANIFEST.jsonl ROOT [--secret NAME=VALUE]... [--workflow-name NAME]
"""
import json
import os
import re
import subprocess
import sys


def main():
    manifest, root = sys.argv[1], sys.argv[2]
    secrets, wf_name = {}, "wf-test"
    rest = sys.argv[3:]
    while rest:
        if rest[0] == "--secret":
            k, v = rest[1].split("=", 1)
            secrets[k] = v
        elif rest[0] == "--workflow-name":
            wf_name = rest[1]
        rest = rest[2:]
    docs = [json.loads(l) for l in open(manifest) if l.strip()]
    config = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    wf = next(d for d in docs if d["kind"] == "Workflow")
    templates = {t["name"]: t for t in wf["spec"]["templates"]}
    dag = templates[wf["spec"]["entrypoint"]]["dag"]["tasks"]
    results, outputs = {}, {}

    def substitute(text, params):
        def one(m):
            expr = m.group(1)
            if expr == "workflow.name":
                return wf_name
            if expr.startswith("inputs.parameters."):
                return params[expr[len("inputs.parameters."):]]
            t = re.fullmatch(r"tasks\.([a-z0-9-]+)\.outputs\.parameters\.result", expr)
            if t:
                return outputs[t.group(1)]
            raise SystemExit(f"argo_pods: unresolved {{{{{expr}}}}}")
        return re.sub(r"\{\{([^}]*)\}\}", one, text)

    def run_pod(label, tmpl, params):
        work = os.path.join(root, label, "work")
        tmp = os.path.join(root, label, "tmp")
        os.makedirs(work, exist_ok=True)
        os.makedirs(tmp, exist_ok=True)
        c = tmpl["container"]
        env = {"PATH": os.environ["PATH"]}
        for e in c.get("env", []):
            if "value" in e:
                v = substitute(e["value"], params)
            elif "configMapKeyRef" in e["valueFrom"]:
                ref = e["valueFrom"]["configMapKeyRef"]
                v = config[ref["name"]][ref["key"]]
            else:
                v = secrets[e["valueFrom"]["secretKeyRef"]["key"]]
            env[e["name"]] = v
        # The pod's /work and /tmp, here.
        def local(path):
            return os.path.join(work, path[len("/work/"):]) if path.startswith("/work/") else \
                os.path.join(tmp, path[len("/tmp/"):]) if path.startswith("/tmp/") else path
        env["CORRAL_WORK"] = work
        for k in ("HOME", "CORRAL_OUTPUT", "CORRAL_INPUTS"):
            if k in env:
                env[k] = local(env[k])
        cmd = [substitute(a, params) for a in c["command"]]
        p = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True)
        out = ""
        for o in tmpl.get("outputs", {}).get("parameters", []):
            path = local(o["valueFrom"]["path"])
            out = open(path).read() if os.path.exists(path) else o["valueFrom"].get("default", "")
        return p.returncode, p.stdout, p.stderr, out

    done = set()
    while len(done) < len(dag):
        progressed = False
        for t in dag:
            if t["name"] in done:
                continue
            deps = t.get("dependencies", [])
            if any(d not in done for d in deps):
                continue
            done.add(t["name"])
            progressed = True
            if any(results.get(d, {}).get("exit") != 0 for d in deps):
                results[t["name"]] = {"exit": None, "skipped": True}
                continue
            tmpl = templates[t["template"]]
            if "suspend" in tmpl:
                results[t["name"]] = {"exit": 0, "resumed": True}
                continue
            params = {p["name"]: substitute(p["value"], {})
                      for p in t.get("arguments", {}).get("parameters", [])}
            tries = 1 + int(tmpl.get("retryStrategy", {}).get("limit", "0"))
            for attempt in range(tries):
                code, so, se, out = run_pod(f"{t['name']}-{attempt}", tmpl, params)
                if code == 0:
                    break
            outputs[t["name"]] = out
            results[t["name"]] = {"exit": code, "tries": attempt + 1, "stderr": se[-2000:]}
        if not progressed:
            raise SystemExit("argo_pods: the DAG does not progress (a cycle?)")
    code, so, se, _ = run_pod("exit-handler", templates[wf["spec"]["onExit"]], {})
    print(json.dumps({"tasks": results, "exit_handler": {"exit": code, "stdout": so,
                                                          "stderr": se[-2000:]}}))


if __name__ == "__main__":
    main()
