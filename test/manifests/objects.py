"""Helpers for run.sh: reads the concatenated JSON objects `kubectl create --dry-run=client -o json` prints.

  objects.py pods IN OUT           the SandboxTemplates' pod templates in IN, as a List of Pods in OUT
  objects.py argo-file IN          checks the rendered argo-rollouts file variant (exit 1 with reasons)
  objects.py proxy-env IN ROOT     the environment the rendered sandcanary-proxy Deployment in IN gives its
                                   container, one NAME=VALUE per line: downward-API values filled in as the
                                   kubelet would, paths inside Secret mounts moved under ROOT, where each
                                   such file is created with a random token
"""
import glob
import json
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def template_env_names():
    """Environment variables the AnalysisTemplates tell the plugin to read secrets from."""
    names = set()
    for path in glob.glob(os.path.join(ROOT, "analysis-templates", "*.yaml")):
        names.update(re.findall(r"^\s*(?:env|tokenEnv|apiKeyEnv):\s*([A-Z][A-Z0-9_]*)\s*$", open(path).read(), re.M))
    return names


def objects(path):
    text, dec, pos, out = open(path).read(), json.JSONDecoder(), 0, []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        obj, pos = dec.raw_decode(text, pos)
        out.extend(obj.get("items", []) if obj.get("kind") == "List" else [obj])


def pods(src, dst):
    out = []
    for t in objects(src):
        if t["kind"] != "SandboxTemplate":
            continue
        tpl = t["spec"]["podTemplate"]
        out.append({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "template-" + t["metadata"]["name"],
                                 "namespace": t["metadata"]["namespace"],
                                 "labels": tpl.get("metadata", {}).get("labels", {})},
                    "spec": tpl["spec"]})
    json.dump({"apiVersion": "v1", "kind": "List", "items": out}, open(dst, "w"))
    print(len(out))


def proxy_env(src, root):
    import os
    import secrets
    dep = [o for o in objects(src) if o["kind"] == "Deployment" and o["metadata"]["name"] == "sandcanary-proxy"][0]
    spec = dep["spec"]["template"]["spec"]
    ctr = [c for c in spec["containers"] if c["name"] == "proxy"][0]
    secret_vols = {v["name"] for v in spec.get("volumes", []) if "secret" in v}
    secret_mounts = [m["mountPath"].rstrip("/") + "/" for m in ctr.get("volumeMounts", []) if m["name"] in secret_vols]
    fields = {"metadata.name": dep["metadata"]["name"] + "-test", "metadata.namespace": dep["metadata"]["namespace"]}
    for e in ctr.get("env", []):
        if "valueFrom" in e:
            value = fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            value = e.get("value", "")
        for m in secret_mounts:
            if value.startswith(m):
                value = root + value
                os.makedirs(os.path.dirname(value), exist_ok=True)
                with open(value, "w") as f:
                    f.write(secrets.token_hex(24))
        print(f"{e['name']}={value}")


def argo_file(src):
    objs = objects(src)
    errors = []
    cms = [o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "argo-rollouts-config"]
    location = "file:///home/argo-rollouts/plugins/sandcanary-plugin"
    if len(cms) != 1 or location not in cms[0].get("data", {}).get("metricProviderPlugins", ""):
        errors.append(f"argo-rollouts-config does not register {location}: {cms}")
    deps = [o for o in objs if o["kind"] == "Deployment" and o["metadata"]["name"] == "argo-rollouts"]
    if len(deps) != 1:
        errors.append("no argo-rollouts Deployment")
    else:
        spec = deps[0]["spec"]["template"]["spec"]
        ctl = [c for c in spec["containers"] if c["name"] == "argo-rollouts"][0]
        mounts = {m["mountPath"]: m["name"] for m in ctl.get("volumeMounts", [])}
        vol = mounts.get("/home/argo-rollouts/plugins")
        if vol is None:
            errors.append("the controller does not mount /home/argo-rollouts/plugins")
        inits = [c for c in spec.get("initContainers", []) if c["name"] == "sandcanary-plugin"]
        if len(inits) != 1:
            errors.append("no sandcanary-plugin init container")
        else:
            init = inits[0]
            if init.get("args") != ["/home/argo-rollouts/plugins/sandcanary-plugin"]:
                errors.append(f"init container copies to {init.get('args')}, not the registered location")
            if {m["mountPath"]: m["name"] for m in init.get("volumeMounts", [])}.get("/home/argo-rollouts/plugins") != vol:
                errors.append("init container and controller do not share the plugins volume")
        env = {e["name"] for e in ctl.get("env", [])}
        wanted = template_env_names()
        for name in sorted(wanted):
            if name not in env:
                errors.append(f"the controller has no {name} for the plugin")
        # Templates may name only the variables the plugin allows by default (SANDCANARY_SECRET_ENV).
        for name in sorted(wanted - {"GITHUB_TOKEN", "SANDCANARY_LLM_API_KEY"}):
            errors.append(f"the templates name {name}, which the plugin refuses by default")
    for e in errors:
        print(e, file=sys.stderr)
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    {"pods": lambda: pods(sys.argv[2], sys.argv[3]), "argo-file": lambda: argo_file(sys.argv[2]),
     "proxy-env": lambda: proxy_env(sys.argv[2], sys.argv[3])}[sys.argv[1]]()
