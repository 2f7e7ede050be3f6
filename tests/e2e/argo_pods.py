#!/usr/bin/env python3
"""Runs the pods of a workflow `corral export argo --format json` wrote, the way Argo would,
without a cluster: the DAG in dependency order (dependents of a failed task are not run), each
task's container command with its environment (values, configMapKeyRef from the exported
ConfigMap, secretKeyRef from --secret NAME=VALUE), Argo's {{workflow.name}}, {{inputs...}} and
{{tasks.X.outputs.parameters.result}} substitutions, the output parameter read from its path,
then the exit handler. Suspend templates (approvals) are resumed at once.

Each pod's volumes are folders under ROOT/POD/ (a configMap volume holds the ConfigMap's keys
as files), and a container's paths under its volume mounts are mapped there: CORRAL_WORK,
CORRAL_OUTPUT, CORRAL_INPUTS, CORRAL_PROXY_DIR and HOME in the environment, and the sidecars'
arguments. Each container's output is kept whole in ROOT/POD/CONTAINER.stdout and .stderr.
Sidecars (`corral proxy`, run as --corral) start with the main container and get
SIGTERM when it ends, as Argo does; since all pods share this host's loopback, each sidecar
listens on a free port (an added --port) and CORRAL_PROXY is pointed at it. --sidecar-env adds
a variable to the sidecars' environment (the trust store of their image); --sidecar-delay S
starts them S seconds after the main container (Argo promises no order). Read-only mounts are
not enforced here. It prints one JSON object: each task's exit status, what its sidecars
printed, and what the exit handler printed.

    argo_pods.py MANIFEST.jsonl ROOT [--secret NAME=VALUE]... [--workflow-name NAME]
                 [--corral PATH] [--sidecar-env NAME=VALUE]... [--sidecar-delay S]
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys


def main():
    manifest, root = sys.argv[1], sys.argv[2]
    secrets, wf_name, corral, sidecar_env, delay = {}, "wf-test", "corral", {}, "0"
    rest = sys.argv[3:]
    while rest:
        if rest[0] == "--secret":
            k, v = rest[1].split("=", 1)
            secrets[k] = v
        elif rest[0] == "--workflow-name":
            wf_name = rest[1]
        elif rest[0] == "--corral":
            corral = rest[1]
        elif rest[0] == "--sidecar-delay":
            delay = rest[1]
        elif rest[0] == "--sidecar-env":
            k, v = rest[1].split("=", 1)
            sidecar_env[k] = v
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

    def volumes(label, tmpl):
        base = os.path.join(root, label)
        out = {}
        for v in tmpl.get("volumes", []):
            path = os.path.join(base, v["name"])
            os.makedirs(path, exist_ok=True)
            for key, text in config.get(v.get("configMap", {}).get("name"), {}).items():
                with open(os.path.join(path, key), "w") as f:
                    f.write(text)
            out[v["name"]] = path
        return out

    def mapper(container, vols):
        mounts = sorted(((m["mountPath"], vols[m["name"]])
                         for m in container.get("volumeMounts", [])), key=lambda m: -len(m[0]))
        def local(path):
            for mount, folder in mounts:
                if path == mount or path.startswith(mount + "/"):
                    return folder + path[len(mount):]
            return path
        return local

    def environment(container, params):
        env = {"PATH": os.environ["PATH"]}
        for e in container.get("env", []):
            if "value" in e:
                v = substitute(e["value"], params)
            elif "configMapKeyRef" in e["valueFrom"]:
                ref = e["valueFrom"]["configMapKeyRef"]
                v = config[ref["name"]][ref["key"]]
            else:
                v = secrets[e["valueFrom"]["secretKeyRef"]["key"]]
            env[e["name"]] = v
        return env

    def free_port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def run_pod(label, tmpl, params):
        vols = volumes(label, tmpl)
        c = tmpl["container"]
        local = mapper(c, vols)
        env = environment(c, params)
        for k in ("HOME", "CORRAL_WORK", "CORRAL_OUTPUT", "CORRAL_INPUTS", "CORRAL_PROXY_DIR"):
            if k in env:
                env[k] = local(env[k])
        sidecars = []
        for sc in tmpl.get("sidecars", []):
            sc_local = mapper(sc, vols)
            port = free_port()
            cmd = [corral if i == 0 and a == "corral" else sc_local(a)
                   for i, a in enumerate(sc["command"])] + ["--port", str(port)]
            cmd = ["sh", "-c", 'sleep "$0" && exec "$@"', delay] + cmd
            sc_env = environment(sc, params)
            sc_env.update(sidecar_env)
            if "CORRAL_PROXY" in env:
                env["CORRAL_PROXY"] = f"http://127.0.0.1:{port}"
            sidecars.append((sc["name"], subprocess.Popen(
                cmd, env=sc_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        cmd = [substitute(a, params) for a in c["command"]]
        p = subprocess.run(cmd, env=env, cwd=env["CORRAL_WORK"], capture_output=True, text=True)
        # Whole, as the pod's logs: ROOT/POD/CONTAINER.stdout and .stderr.
        def keep(container, so, se):
            for ext, text in (("stdout", so), ("stderr", se)):
                with open(os.path.join(root, label, f"{container}.{ext}"), "w") as f:
                    f.write(text)
        keep(c["name"], p.stdout, p.stderr)
        printed = {}
        for name, sc in sidecars:
            sc.send_signal(signal.SIGTERM)
            so, se = sc.communicate(timeout=30)
            keep(name, so, se)
            printed[name] = {"exit": sc.returncode, "stdout": so, "stderr": se[-2000:]}
        out = ""
        for o in tmpl.get("outputs", {}).get("parameters", []):
            path = local(o["valueFrom"]["path"])
            out = open(path).read() if os.path.exists(path) else o["valueFrom"].get("default", "")
        return p.returncode, p.stdout, p.stderr, out, printed

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
                code, so, se, out, sidecars = run_pod(f"{t['name']}-{attempt}", tmpl, params)
                if code == 0:
                    break
            outputs[t["name"]] = out
            results[t["name"]] = {"exit": code, "tries": attempt + 1, "stderr": se[-2000:],
                                  "sidecars": sidecars}
        if not progressed:
            raise SystemExit("argo_pods: the DAG does not progress (a cycle?)")
    code, so, se, _, _ = run_pod("exit-handler", templates[wf["spec"]["onExit"]], {})
    print(json.dumps({"tasks": results, "exit_handler": {"exit": code, "stdout": so,
                                                          "stderr": se[-2000:]}}))


if __name__ == "__main__":
    main()
