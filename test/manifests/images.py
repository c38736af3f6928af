"""Checks the public build path of the image definitions, which the tests cannot build (it pulls the public
base images; `make test-images` builds the *-prebuilt targets on local bases and runs every image): what the
Dockerfiles pin, copy and run must match the repository. Base images are build arguments: a FROM ${ARG} is
checked with the ARG's default. Exit 1 with one line per problem.

  deploy/sandbox/Dockerfile   npm ci from package-lock.json; package.json pins exact versions equal to the
                              lock's; the Node image satisfies every locked package's engines; Debian's
                              chromium; a non-root USER; COPY sources exist
  deploy/images/Dockerfile    the binaries it builds and copies are workspace [[bin]] targets; the Rust
                              image is at least the workspace's rust-version; every FROM pinned by a version
                              tag; non-root USER in each final stage; COPY sources exist (context: repo root)
  both, and the manifests     the same Node image in both Dockerfiles; the paths the manifests name
                              (/server.js, /app/server.js, /plugin/sandcanary-plugin) are where the images
                              put them
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
errors = []


def err(msg):
    errors.append(msg)


def read(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return f.read()


def instructions(text):
    """(instruction, argument) pairs, continuation lines joined, comments dropped."""
    lines, cur = [], ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#") and not cur:
            continue
        cur += raw.rstrip("\\").rstrip() + " " if raw.rstrip().endswith("\\") else raw
        if not raw.rstrip().endswith("\\"):
            if cur.strip():
                word, _, rest = cur.strip().partition(" ")
                lines.append((word.upper(), rest.strip()))
            cur = ""
    return lines


def stages(ins):
    """[(stage name, [(instr, arg)])]; FROM ${ARG} resolved with the global ARG's default."""
    out, args = [], {}
    for word, arg in ins:
        if word == "ARG" and not out:
            k, _, v = arg.partition("=")
            args[k.strip()] = v.strip()
        elif word == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", arg, re.I)
            image = re.sub(r"\$\{(\w+)\}", lambda a: args.get(a.group(1), a.group(0)), m.group(1))
            out.append({"image": image, "name": m.group(2), "ins": []})
        elif out:
            out[-1]["ins"].append((word, arg))
    return out


def chain(st, all_stages):
    """The stage and the stages it is built FROM, nearest first."""
    by_name = {s["name"]: s for s in all_stages if s["name"]}
    out = [st]
    while out[-1]["image"] in by_name:
        out.append(by_name[out[-1]["image"]])
    return out


def inherited(st, all_stages):
    """All instructions of the stage including those of the stages it is built on, oldest first."""
    return [i for s in reversed(chain(st, all_stages)) for i in s["ins"]]


def root_image(st, all_stages):
    return chain(st, all_stages)[-1]["image"]


def version_tuple(v):
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def check_pinned(path, st, stage_names):
    img = st["image"]
    if img in stage_names or "@sha256:" in img:
        return
    # distroless publishes no version tags; its Debian release is part of the image name.
    if re.match(r"gcr\.io/distroless/\w+-debian\d+:nonroot$", img):
        return
    name, _, tag = img.rpartition(":") if ":" in img.split("/")[-1] else (img, "", "")
    if not tag or tag == "latest" or not re.search(r"\d", tag):
        err(f"{path}: FROM {img} is not pinned by a version tag")


def check_user(path, st, all_stages):
    users = [a for w, a in inherited(st, all_stages) if w == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        err(f"{path}: stage {st['name'] or st['image']} does not end with a non-root USER")


def copy_sources(st):
    for w, a in st["ins"]:
        if w in ("COPY", "ADD") and "--from=" not in a:
            parts = [p for p in a.split() if not p.startswith("--")]
            yield from parts[:-1]


# --- deploy/sandbox/Dockerfile ------------------------------------------------------------------------
sb_path = "deploy/sandbox/Dockerfile"
sb = stages(instructions(read(sb_path)))
lock = json.loads(read("deploy/sandbox/package-lock.json"))
pkg = json.loads(read("deploy/sandbox/package.json"))
for name, want in pkg.get("dependencies", {}).items():
    if not re.fullmatch(r"\d+\.\d+\.\d+", want):
        err(f"deploy/sandbox/package.json: {name} is not pinned to an exact version ({want})")
    locked = lock["packages"].get(f"node_modules/{name}", {}).get("version")
    if locked != want:
        err(f"deploy/sandbox/package.json pins {name} {want}, package-lock.json has {locked}")
for name in ("playwright-core", "@playwright/mcp"):
    if name not in pkg.get("dependencies", {}):
        err(f"deploy/sandbox/package.json does not pin {name}")
final = sb[-1]
final_ins = inherited(final, sb)
run = " ".join(a for w, a in final_ins if w == "RUN")
if "npm ci" not in run:
    err(f"{sb_path}: node packages are not installed with `npm ci` (the lockfile)")
if not re.search(r"apt-get install[^&]*\bchromium\b", run):
    err(f"{sb_path}: Debian's chromium is not installed with apt-get")
if not any(w == "COPY" and "package-lock.json" in a for w, a in final_ins):
    err(f"{sb_path}: package-lock.json is not copied before npm ci")
for src in [src for st in chain(final, sb) for src in copy_sources(st)]:
    if not os.path.exists(os.path.join(ROOT, "deploy/sandbox", src)):
        err(f"{sb_path}: COPY source {src} does not exist in deploy/sandbox")
check_user(sb_path, final, sb)
node_image = root_image(final, sb)
node_version = version_tuple(node_image.split(":")[1]) if ":" in node_image else ()
for key, meta in lock["packages"].items():
    engine = meta.get("engines", {}).get("node") if isinstance(meta.get("engines"), dict) else None
    m = re.fullmatch(r">=\s*([\d.]+)", engine or "")
    if m and node_version < version_tuple(m.group(1)):
        err(f"{sb_path}: {node_image} is older than {key or 'the package'} requires (node {engine})")
if "/server.js" not in read(sb_path):
    err(f"{sb_path}: /server.js, which KARS and isola sandboxes start, is not provided")
sb_names = [s["name"] for s in sb if s["name"]]
for st in sb:
    check_pinned(sb_path, st, sb_names)
if not any(s["name"] == "sandbox-prebuilt" for s in sb):
    err(f"{sb_path}: no sandbox-prebuilt target (test/node/images.sh builds it)")

# --- deploy/images/Dockerfile -------------------------------------------------------------------------
im_path = "deploy/images/Dockerfile"
im = stages(instructions(read(im_path)))
names = [s["name"] for s in im if s["name"]]
meta = json.loads(subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1"], cwd=ROOT,
                                 check=True, capture_output=True, text=True).stdout)
bins = {t["name"]: p["name"] for p in meta["packages"] for t in p["targets"] if "bin" in t["kind"]}
# The workspace's rust-version, and any crate's own if higher.
m = re.search(r'^rust-version\s*=\s*"([\d.]+)"', read("Cargo.toml"), re.M)
rust_version = max([version_tuple(m.group(1)) if m else (0,)] +
                   [version_tuple(p["rust_version"]) for p in meta["packages"] if p.get("rust_version")])
build = next(s for s in im if s["name"] == "build")
build_run = " ".join(a for w, a in build["ins"] if w == "RUN")
for binary in ("sandcanary-proxy", "sandcanary-plugin"):
    if binary not in bins:
        err(f"{im_path}: {binary} is not a [[bin]] of the workspace")
        continue
    if f"-p {bins[binary]}" not in build_run or f"--bin {binary}" not in build_run:
        err(f"{im_path}: the build stage does not build {binary} (-p {bins[binary]} --bin {binary})")
if "--locked" not in build_run:
    err(f"{im_path}: cargo build without --locked")
rust_tag = build["image"].split(":")[1] if ":" in build["image"] else ""
if not rust_tag or version_tuple(rust_tag) < rust_version:
    err(f"{im_path}: {build['image']} is older than the workspace's rust-version {rust_version}")
for src in copy_sources(build):
    if not os.path.exists(os.path.join(ROOT, src)):
        err(f"{im_path}: COPY source {src} does not exist at the repository root")
targets = ("proxy", "plugin", "proxy-local")
for st in im:
    check_pinned(im_path, st, names)
    if st["name"] in targets or st["name"] in [t + "-prebuilt" for t in targets]:
        check_user(im_path, st, im)
    # prebuilt/ is filled by whoever builds the *-prebuilt targets (test/node/images.sh).
    if st["name"] != "build" and not (st["name"] or "").endswith("-prebuilt"):
        for src in copy_sources(st):
            if not os.path.exists(os.path.join(ROOT, src)):
                err(f"{im_path}: COPY source {src} does not exist at the repository root")
for needed in targets:
    for stage in (needed, needed + "-prebuilt"):
        if stage not in names:
            err(f"{im_path}: no stage {stage}")
by_name = {s["name"]: s for s in im}
plugin_copy = " ".join(a for w, a in by_name.get("plugin", {"ins": []})["ins"] if w == "COPY")
if "/out/sandcanary-plugin /plugin/sandcanary-plugin" not in plugin_copy:
    err(f"{im_path}: the plugin stage does not put the binary at /plugin/sandcanary-plugin")
if '"cp", "/plugin/sandcanary-plugin"' not in read(im_path):
    err(f"{im_path}: the plugin image's entrypoint is not `cp /plugin/sandcanary-plugin`")
local = by_name.get("proxy-local", {"ins": [], "image": "", "name": None})
local_ins = inherited(local, im)
if not any(w == "COPY" and a.endswith("./server.js") for w, a in local_ins) or \
        not any(w == "WORKDIR" and a == "/app" for w, a in local_ins):
    err(f"{im_path}: proxy-local does not provide /app/server.js")
if root_image(local, im) != node_image:
    err(f"{im_path}: proxy-local is based on {root_image(local, im)}, the sandbox image on {node_image}")

# --- the manifests name these paths -------------------------------------------------------------------
if "LOCAL_SANDBOX_SERVER" not in read("deploy/overlays/local/deployment-patch.yaml") or \
        "/app/server.js" not in read("deploy/overlays/local/deployment-patch.yaml"):
    err("deploy/overlays/local: LOCAL_SANDBOX_SERVER is not /app/server.js")
if "ghcr.io/sandcanary/sandcanary-plugin:" not in read("deploy/argo-rollouts/file/controller-patch.yaml"):
    err("deploy/argo-rollouts/file: the init container does not run the plugin image")

for e in errors:
    print(f"images: {e}", file=sys.stderr)
if errors:
    sys.exit(1)
print("images: the Dockerfiles' public build path agrees with the repository (make test-images builds and runs them)")
