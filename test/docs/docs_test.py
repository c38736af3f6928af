#!/usr/bin/env python3
"""The docs test: every shell block of the repository's Markdown runs as written, or says why not.

Every fenced block whose language is a shell (sh, bash, shell, console, zsh) in a tracked *.md file
(README.md, BENCHMARKS.md, docs/, every crate's and directory's README) is either

  * run as written, each block in its own `bash -e -o pipefail` from the root of a fresh copy of the
    repository, after the demo's setup, and must exit 0; or
  * preceded, on the line directly above its fence, by a marker:

      <!-- docs-test: skip (why it cannot run here, e.g. needs a cluster) -->
      <!-- docs-test: expect REGEX -->   run, and the output (stdout + stderr) must match REGEX
      <!-- docs-test: server URL -->     a long-running server: started, it must answer URL with a
                                         2xx within DOCS_TEST_SERVER_WAIT seconds, then gets SIGTERM
                                         and must exit 0 (or be ended by that signal)

A fence without a language fails too (label it `sh` to have it run, `text` otherwise), and so does an
unknown marker or a skip without a reason. Blocks that read $SAMPLES or $DEMO_SAMPLES for their sample
counts get short ones here (DOCS_TEST_SAMPLES, default 2). Blocks run in a network namespace of their
own (loopback only) when the test may create one, so fixed ports like 9000 are free.

  docs_test.py check [--root DIR]     classify only (fast): fails on unlabeled fences and bad markers
  docs_test.py run [--root DIR] [--only FILE[:LINE]]
                                       copy the repository (to DOCS_TEST_COPY, default
                                       ~/.cache/sandcanary/docs-test/sandcanary), run the demo's setup
                                       there (make install into a temporary PREFIX), run every block
"""

import argparse
import filecmp
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

SHELLS = {"sh", "bash", "shell", "console", "zsh"}
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<body>.*?)\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


class Block:
    def __init__(self, path, line, lang, body, marker):
        self.path, self.line, self.lang, self.body, self.marker = path, line, lang, body, marker
        self.kind, self.arg = None, None

    @property
    def where(self):
        return f"{self.path}:{self.line}"


def markdown_files(root):
    """Tracked (and untracked, not ignored) Markdown files, without node_modules."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "*.md"],
            cwd=root, check=True, capture_output=True, text=True,
        ).stdout.split("\n")
        files = [f for f in out if f]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for d, dirs, names in os.walk(root):
            dirs[:] = [x for x in dirs if x not in (".git", "node_modules", "target")]
            files += [os.path.relpath(os.path.join(d, n), root) for n in names if n.endswith(".md")]
    return sorted(f for f in files if "node_modules/" not in f and os.path.isfile(os.path.join(root, f)))


def parse(root, rel):
    """Shell blocks of one file, and the problems found (file:line: what)."""
    blocks, problems = [], []
    lines = open(os.path.join(root, rel), encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            mk = MARKER.match(lines[i])
            if mk:
                nxt = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
                if not nxt:
                    problems.append(f"{rel}:{i + 1}: docs-test marker not directly above a code fence")
            i += 1
            continue
        fence, info = m.group("fence"), m.group("info").strip()
        start = i + 1
        body = []
        i += 1
        while i < len(lines):
            close = FENCE.match(lines[i])
            if close and close.group("fence")[0] == fence[0] and len(close.group("fence")) >= len(fence) \
                    and not close.group("info").strip():
                break
            body.append(lines[i][len(m.group("indent")):] if lines[i].startswith(m.group("indent")) else lines[i])
            i += 1
        i += 1
        lang = info.split()[0].lower() if info else ""
        above = lines[start - 2] if start >= 2 else ""
        marker = MARKER.match(above)
        if not lang:
            problems.append(
                f"{rel}:{start}: code fence without a language: label it ```sh to have the docs test run "
                f"it, or ```text if it is not commands")
            continue
        if lang not in SHELLS:
            if marker:
                problems.append(f"{rel}:{start - 1}: docs-test marker above a ```{lang} block (only shell blocks run)")
            continue
        b = Block(rel, start, lang, "\n".join(body) + "\n", marker.group("body") if marker else None)
        problem = classify(b)
        if problem:
            problems.append(f"{rel}:{start - 1}: {problem}")
        else:
            blocks.append(b)
    return blocks, problems


def classify(b):
    if b.marker is None:
        b.kind = "run"
        return None
    m = re.fullmatch(r"skip\s*\((?P<why>.*\S.*)\)", b.marker)
    if m:
        b.kind, b.arg = "skip", m.group("why").strip()
        return None
    m = re.fullmatch(r"expect\s+(?P<re>.+)", b.marker)
    if m:
        try:
            re.compile(m.group("re"))
        except re.error as e:
            return f"docs-test: expect: bad regular expression {m.group('re')!r}: {e}"
        b.kind, b.arg = "expect", m.group("re")
        return None
    m = re.fullmatch(r"server\s+(?P<url>https?://\S+)", b.marker)
    if m:
        b.kind, b.arg = "server", m.group("url")
        return None
    if b.marker.startswith("skip"):
        return "docs-test: skip needs a reason: <!-- docs-test: skip (why it cannot run here) -->"
    return (f"unknown docs-test marker {b.marker!r}: use <!-- docs-test: skip (reason) -->, "
            "<!-- docs-test: expect REGEX --> or <!-- docs-test: server URL -->")


def collect(root):
    blocks, problems = [], []
    for rel in markdown_files(root):
        b, p = parse(root, rel)
        blocks += b
        problems += p
    return blocks, problems


# ---- running -------------------------------------------------------------------------------------

def can_unshare():
    try:
        return subprocess.run(["unshare", "--net", "--", "ip", "link", "set", "lo", "up"],
                              capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def block_env(prefix, samples):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SANDCANARY_", "MAKE", "CARGO_MAKEFLAGS")) and k not in ("MFLAGS",)}
    env.update(PATH=f"{prefix}/bin:{env.get('PATH', '')}", PREFIX=prefix, SAMPLES=str(samples),
               DEMO_SAMPLES=str(samples), TERM="dumb", NO_COLOR="1")
    return env


def command(b, netns):
    # `bash -c` runs the block as pasted, stopping at the first failing command.
    argv = ["bash", "-e", "-o", "pipefail", "-c", b.body]
    if netns:
        argv = ["unshare", "--net", "--", "bash", "-c", 'ip link set lo up && exec "$@"', "docs-test"] + argv
    return argv


def tail(text, n=40):
    lines = text.rstrip("\n").split("\n")
    return "\n".join(("    | " + l) for l in lines[-n:])


def run_block(b, cwd, env, netns, timeout, server_wait):
    start = time.monotonic()
    if b.kind == "server":
        return run_server(b, cwd, env, netns, server_wait), time.monotonic() - start
    try:
        p = subprocess.run(command(b, netns), cwd=cwd, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, errors="replace", timeout=timeout,
                           start_new_session=True)
    except subprocess.TimeoutExpired as e:
        out = e.output.decode(errors="replace") if isinstance(e.output, bytes) else (e.output or "")
        return f"did not finish within {timeout} s (DOCS_TEST_BLOCK_TIMEOUT)\n{tail(out)}", timeout
    elapsed = time.monotonic() - start
    if p.returncode != 0:
        return f"exited {p.returncode}\n{tail(p.stdout)}", elapsed
    if b.kind == "expect" and not re.search(b.arg, p.stdout, re.M):
        return f"exited 0 but its output does not match /{b.arg}/\n{tail(p.stdout)}", elapsed
    return None, elapsed


def run_server(b, cwd, env, netns, wait):
    log = tempfile.TemporaryFile(mode="w+")
    if netns:
        # The URL must be reached inside the server's namespace: the check runs there too.
        check = (f'( {b.body.rstrip()}\n) & pid=$!\n'
                 f'for _ in $(seq 1 {wait * 5}); do\n'
                 f'  if curl -fs -o /dev/null --max-time 2 {shquote(b.arg)}; then ok=1; break; fi\n'
                 f'  kill -0 $pid 2>/dev/null || break\n  sleep 0.2\ndone\n'
                 f'[ -n "${{ok:-}}" ] || {{ echo "docs-test: {b.arg} did not answer"; kill -TERM $pid 2>/dev/null; wait $pid || true; exit 90; }}\n'
                 f'echo "docs-test: {b.arg} answered"\n'
                 f'kill -TERM $pid; set +e; wait $pid; rc=$?; set -e\n'
                 f'[ $rc -eq 0 ] || [ $rc -eq 143 ] || {{ echo "docs-test: exited $rc after SIGTERM"; exit 91; }}\n')
        argv = ["unshare", "--net", "--", "bash", "-c", 'ip link set lo up && exec "$@"', "docs-test",
                "bash", "-e", "-o", "pipefail", "-c", check]
        p = subprocess.run(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                           timeout=wait + 120, start_new_session=True)
        log.seek(0)
        out = log.read()
        if p.returncode == 90:
            return f"server did not answer {b.arg} with a 2xx within {wait} s\n{tail(out)}"
        if p.returncode != 0:
            return f"server exited {p.returncode}\n{tail(out)}"
        return None
    proc = subprocess.Popen(command(b, False), cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    ok = False
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(b.arg, timeout=2) as r:
                ok = 200 <= r.status < 300
        except OSError:
            pass
        if ok:
            break
        time.sleep(0.2)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        rc = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        rc = proc.wait()
    log.seek(0)
    out = log.read()
    if not ok:
        return f"server did not answer {b.arg} with a 2xx within {wait} s (exit {rc})\n{tail(out)}"
    if rc not in (0, -signal.SIGTERM, 143):
        return f"server exited {rc} after SIGTERM\n{tail(out)}"
    return None


def shquote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def fresh_copy(root, dest):
    """Makes dest hold exactly the repository's files as a fresh clone has them (tracked and
    untracked-not-ignored; no node_modules, no build output). A file whose bytes are already there
    keeps its old mtime, any other is written now: cargo then rebuilds exactly the changed crates."""
    files = set(f for f in subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=root,
                                          check=True, capture_output=True).stdout.split(b"\0")
                if f and os.path.lexists(os.path.join(root.encode(), f)))
    os.makedirs(dest, exist_ok=True)
    for d, dirs, names in os.walk(dest.encode(), topdown=False):
        for n in names:
            p = os.path.join(d, n)
            if os.path.relpath(p, dest.encode()) not in files:
                os.remove(p)
        for n in dirs:
            p = os.path.join(d, n)
            if os.path.islink(p):
                os.remove(p)
            elif not os.listdir(p):
                os.rmdir(p)
    for f in files:
        src, dst = os.path.join(root.encode(), f), os.path.join(dest.encode(), f)
        if os.path.islink(src):
            if os.path.lexists(dst):
                os.remove(dst)
            os.symlink(os.readlink(src), dst)
            continue
        if os.path.isfile(dst) and filecmp.cmp(src, dst, shallow=False):
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)
        shutil.copymode(src, dst)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["check", "run"])
    ap.add_argument("--root", default=os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
    ap.add_argument("--only", help="FILE or FILE:LINE: run only these blocks")
    ap.add_argument("--setup", default="make install",
                    help="the demo's setup, run in the copy before the blocks (default: %(default)s)")
    a = ap.parse_args()
    root = os.path.abspath(a.root)

    blocks, problems = collect(root)
    counts = {}
    for b in blocks:
        counts[b.kind] = counts.get(b.kind, 0) + 1
    print(f"docs-test: {len(blocks)} shell blocks: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    for b in blocks:
        if b.kind == "skip":
            print(f"docs-test: skip {b.where} ({b.arg})")
    if problems:
        for p in problems:
            print(f"docs-test: FAIL {p}", file=sys.stderr)
        print(f"docs-test: {len(problems)} block(s) neither run nor marked correctly "
              f"(marker syntax: test/docs/docs_test.py)", file=sys.stderr)
        return 1
    if a.mode == "check":
        return 0

    todo = [b for b in blocks if b.kind != "skip"]
    if a.only:
        f, _, line = a.only.partition(":")
        todo = [b for b in todo if b.path == f and (not line or b.line == int(line))]
        if not todo:
            print(f"docs-test: no runnable block at {a.only}", file=sys.stderr)
            return 1
    timeout = int(os.environ.get("DOCS_TEST_BLOCK_TIMEOUT", "900"))
    server_wait = int(os.environ.get("DOCS_TEST_SERVER_WAIT", "60"))
    samples = int(os.environ.get("DOCS_TEST_SAMPLES", "2"))
    # The copy lives at a fixed path: cargo keys a workspace crate's build by its path, so a new path
    # each run would rebuild every workspace crate in release.
    copy = os.path.abspath(os.environ.get("DOCS_TEST_COPY") or os.path.expanduser(
        "~/.cache/sandcanary/docs-test/sandcanary"))
    if os.path.realpath(copy) == os.path.realpath(root):
        print("docs-test: DOCS_TEST_COPY must not be the repository itself", file=sys.stderr)
        return 1
    work = tempfile.mkdtemp(prefix="sandcanary-docs-")
    prefix = os.path.join(work, "prefix")
    os.makedirs(os.path.join(prefix, "bin"))
    failures = []
    try:
        t0 = time.monotonic()
        fresh_copy(root, copy)
        env = block_env(prefix, samples)
        print(f"docs-test: fresh copy in {copy}; setup: {a.setup}", flush=True)
        s = subprocess.run(["bash", "-c", a.setup], cwd=copy, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, errors="replace")
        if s.returncode != 0:
            print(f"docs-test: FAIL setup `{a.setup}` exited {s.returncode}\n{tail(s.stdout)}", file=sys.stderr)
            return 1
        print(f"docs-test: setup took {time.monotonic() - t0:.0f} s", flush=True)
        netns = can_unshare()
        if not netns:
            print("docs-test: cannot create a network namespace (not root?): blocks share the host's "
                  "loopback, so fixed ports must be free", flush=True)
        for b in todo:
            err, secs = run_block(b, copy, env, netns, timeout, server_wait)
            if err:
                failures.append(f"{b.where}: ```{b.lang} block ({b.kind}) {err}")
                print(f"docs-test: FAIL {b.where} ({secs:.0f} s)", flush=True)
            else:
                print(f"docs-test: ok   {b.where} ({b.kind}, {secs:.0f} s)", flush=True)
        print(f"docs-test: {len(todo)} blocks run in {time.monotonic() - t0:.0f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        print(f"docs-test: the copy stays in {copy} (the next run updates it)")
    for f in failures:
        print(f"docs-test: FAIL {f}", file=sys.stderr)
    if failures:
        print(f"docs-test: {len(failures)} block(s) failed; run one alone with "
              f"`test/docs/docs_test.py run --only FILE:LINE`, or mark it "
              f"<!-- docs-test: skip (reason) --> on the line above its fence", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
