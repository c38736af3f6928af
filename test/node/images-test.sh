#!/usr/bin/env bash
# test-images: builds every image with test/node/images.sh and checks that each container really works,
# with podman (runc) on closed networks: every container runs with --network=none (loopback only) and the
# clients join its network namespace (--network=container:...), so no packet leaves the container.
#
#   0. the archives import into a (private) containerd under their references: `ctr -n k8s.io images import`
#   1. the image references are exactly those the manifests name after kustomize
#   2. every image runs as a non-root user
#   3. proxy: starts non-root with a read-only root fs and no capabilities, answers /healthz and /readyz,
#      refuses an unknown caller (403), and stops at start-up on invalid configuration naming the variable
#   4. proxy-local: the local overlay's environment; the agent image's Playwright client through it gets a
#      real Chromium sandbox: two ids get two browsers, the same id again the same one; MCP through it works
#   5. sandbox: the SandboxTemplate's environment and security context; the agent image's Playwright and
#      MCP clients against it directly
#   6. plugin: its entrypoint copies the binary into a volume as the init container does, and that binary
#      completes argo-rollouts' real start-up path (test/conformance TestC17ControllerPath: go-plugin
#      handshake, GetMetadata, Run); in the container it prints the go-plugin handshake line
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IMAGES=$ROOT/test/node/images.sh
LABEL=sandcanary.test=images
failed=0
log() { printf 'test-images: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; failed=$((failed + 1)); }
pm() { "$IMAGES" podman "$@"; }

work=$(mktemp -d)
ctrd_pid=
cleanup() {
  [[ -n $ctrd_pid ]] && kill "$ctrd_pid" 2>/dev/null
  pm ps -aq --filter "label=$LABEL" | xargs -r "$IMAGES" podman rm -f -t 0 >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
cleanup; work=$(mktemp -d)

t0=$SECONDS
"$IMAGES" build
log "images built in $((SECONDS - t0)) s"
declare -A REF
while IFS=$'\t' read -r ref archive; do
  name=$(basename "$archive" .tar); REF[$name]=$ref; IMAGES_DIR=$(dirname "$archive")
  [[ -s $archive ]] || fail "$name: no archive $archive"
  # The archive must carry the reference (what `ctr images import` tags the image with).
  tar -xOf "$archive" manifest.json | grep -qF "\"$ref\"" || fail "$name: $archive is not tagged $ref"
done < <("$IMAGES" list)

# --- 0. the archives import into containerd under their references -----------------------------------------
# A private containerd (its own root, state and socket; no CRI plugin), stopped again at exit.
ctrd=$work/containerd
mkdir -p "$ctrd"
printf '%s\n' 'version = 2' "root = \"$ctrd/root\"" "state = \"$ctrd/state\"" \
  'disabled_plugins = ["io.containerd.grpc.v1.cri"]' '[grpc]' "address = \"$ctrd/sock\"" \
  '[ttrpc]' "address = \"$ctrd/ttrpc.sock\"" >"$ctrd/config.toml"
containerd --config "$ctrd/config.toml" >"$ctrd/log" 2>&1 &
ctrd_pid=$!
for ((i = 0; i < 50; i++)); do ctr -a "$ctrd/sock" version >/dev/null 2>&1 && break; sleep 0.2; done
for name in proxy plugin agent; do # the small ones; the others are the same format
  ctr -a "$ctrd/sock" -n k8s.io images import "$IMAGES_DIR/$name.tar" >/dev/null 2>&1 ||
    fail "$name: ctr images import failed ($(tail -3 "$ctrd/log"))"
  # Not `ctr … | grep -q`: with pipefail, grep's early exit can fail ctr with SIGPIPE (a flaky FAIL).
  grep -qxF "${REF[$name]}" <<<"$(ctr -a "$ctrd/sock" -n k8s.io images ls -q)" || fail "$name: containerd does not list ${REF[$name]}"
done
kill "$ctrd_pid"; wait "$ctrd_pid" 2>/dev/null || true; ctrd_pid=
log "ok: ctr -n k8s.io images import tags proxy, plugin and agent with their references"

# --- 1. the manifests' image references -----------------------------------------------------------------
kube_bin=$("$ROOT/test/kube/build.sh" apiserver)
images_in() { sed -nE 's/^ *image: *"?([^" ]+)"?.*/\1/p' | sort -u | tr '\n' ' '; }
check_names() { # WHAT "GOT" NAME...: the manifests of WHAT name exactly the images NAME...
  local what=$1 got=$2 want n; shift 2
  want=$(for n in "$@"; do echo "${REF[$n]}"; done | sort -u | tr '\n' ' ')
  if [[ $got == "$want" ]]; then log "ok: $what names $got"
  else fail "$what names '$got', images.sh builds '$want' for it"; fi
}
for o in agent-sandbox openshell; do
  check_names "deploy/overlays/$o" "$("$kube_bin/kubectl" kustomize "$ROOT/deploy/overlays/$o" | images_in)" proxy sandbox
done
check_names deploy/overlays/local "$("$kube_bin/kubectl" kustomize "$ROOT/deploy/overlays/local" | images_in)" proxy-local
check_names deploy/argo-rollouts/file "$(images_in <"$ROOT/deploy/argo-rollouts/file/controller-patch.yaml")" plugin

# --- 2. non-root users ----------------------------------------------------------------------------------
for name in "${!REF[@]}"; do
  user=$(pm image inspect --format '{{.Config.User}}' "${REF[$name]}")
  [[ -n $user && ${user%%:*} != 0 && ${user%%:*} != root ]] || fail "$name: image user is '${user}' (root)"
done

RUN=(run -d --pull=never --network=none --label "$LABEL" --read-only --tmpfs /tmp:rw,mode=1777
  --cap-drop=ALL --security-opt=no-new-privileges)

# wait_http CONTAINER URL WANT: curl inside the container's network namespace until the body is WANT.
wait_http() {
  local pid body i
  pid=$(pm inspect --format '{{.State.Pid}}' "$1")
  for ((i = 0; i < 120; i++)); do
    body=$(nsenter -t "$pid" -n curl -sS --max-time 2 "$2" 2>/dev/null) && [[ $body == "$3" ]] && return 0
    [[ $(pm inspect --format '{{.State.Running}}' "$1") == true ]] || break
    sleep 0.5
  done
  fail "$1: $2 did not answer '$3' (last: ${body:-nothing})"; pm logs "$1" 2>&1 | tail -20 >&2; return 1
}

# agent NAME OUT ENV...: runs the agent image in NAME's network namespace; its RESULT lines go to OUT.
agent() {
  local target=$1 out=$2; shift 2
  local env=() e
  for e in "$@"; do env+=(-e "$e"); done
  pm run --rm --pull=never --network="container:$target" --label "$LABEL" --read-only --tmpfs /tmp:rw,mode=1777 \
    --cap-drop=ALL --security-opt=no-new-privileges "${env[@]}" "${REF[agent]}" >"$out" 2>"$out.err" || true
}

# result OUT FIELD: FIELD of the first RESULT line (python3: JSON).
result() {
  python3 -c 'import json,sys
for l in open(sys.argv[1]):
    if l.startswith("RESULT "):
        v = json.loads(l[7:]).get(sys.argv[2]); print("" if v is None else v); break' "$1" "$2"
}

expect_ok() { # OUT WHAT
  if [[ $(result "$1" ok) != True ]]; then fail "$2: $(cat "$1" "$1.err" | head -c 1500)"; return 1; fi
  log "ok: $2"
}

# --- 3. proxy -------------------------------------------------------------------------------------------
# A backend that starts without a cluster: substrate (its API is only dialled for a sandbox; TLS with the
# base's CA roots), static identity.
pm "${RUN[@]}" --name sc-img-proxy -e BACKEND=substrate -e SUBSTRATE_ACTOR_TEMPLATE=playwright/browser \
  -e SUBSTRATE_API_ENDPOINT=127.0.0.1:1 -e IDENTITY=static -e IDENTITY_STATIC=127.0.0.2=alice "${REF[proxy]}" >/dev/null
if wait_http sc-img-proxy http://127.0.0.1:9090/healthz ok && wait_http sc-img-proxy http://127.0.0.1:9090/readyz ok; then
  pid=$(pm inspect --format '{{.State.Pid}}' sc-img-proxy)
  uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
  [[ $uid == 65532 ]] || fail "proxy runs as uid $uid, not 65532"
  caps=$(awk '/^CapEff:/ {print $2}' "/proc/$pid/status")
  [[ $caps == 0000000000000000 ]] || fail "proxy has capabilities $caps"
  code=$(nsenter -t "$pid" -n curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:9000/)
  [[ $code == 403 ]] || fail "proxy: an unknown caller got $code, not 403"
  log "ok: proxy non-root (uid $uid), read-only, no capabilities, /healthz and /readyz ok, unknown caller 403"
fi
if out=$(pm run --rm --pull=never --network=none --label "$LABEL" -e IDLE_TTL=soon "${REF[proxy]}" 2>&1); then
  fail "proxy started with IDLE_TTL=soon"
elif ! grep -q 'IDLE_TTL:' <<<"$out"; then
  fail "proxy: invalid IDLE_TTL did not name the variable: $out"
else log "ok: proxy refuses IDLE_TTL=soon: $(head -1 <<<"$out")"; fi

# --- 4. proxy-local with real Chromium sandboxes, the agent image through it ------------------------------
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
# The local overlay's environment (deploy/overlays/local/deployment-patch.yaml), token identity for callers
# that all come from 127.0.0.1 here.
pm "${RUN[@]}" --name sc-img-local \
  -e LEADER_ELECTION=false -e BACKEND=local -e LOCAL_SANDBOX_SERVER=/app/server.js -e LOCAL_CHROMIUM=/usr/bin/chromium \
  -e LOCAL_CHROMIUM_ARGS=--no-sandbox,--disable-setuid-sandbox,--disable-dev-shm-usage -e LOCAL_TMP_DIR=/tmp/sandboxes \
  -e LOCAL_WARM_POOL=1 -e LOCAL_MAX_SANDBOXES=4 -e LOCAL_MCP=true -e IDENTITY=token -e "IDENTITY_TOKEN=$token" \
  "${REF[proxy-local]}" >/dev/null
if wait_http sc-img-local http://127.0.0.1:9090/readyz ok; then
  hdr() { printf '{"Authorization":"Bearer %s","x-sandbox-id":"%s"}' "$token" "$1"; }
  PW=(PW_URL=ws://127.0.0.1:9000/)
  agent sc-img-local "$work/a1" "${PW[@]}" "PW_HEADERS=$(hdr agent-a)"
  agent sc-img-local "$work/b1" "${PW[@]}" "PW_HEADERS=$(hdr agent-b)"
  agent sc-img-local "$work/a2" "${PW[@]}" "PW_HEADERS=$(hdr agent-a)" 'AGENT_EVAL=1 + 41'
  if expect_ok "$work/a1" "proxy-local: agent-a through the proxy" && expect_ok "$work/b1" "proxy-local: agent-b" &&
    expect_ok "$work/a2" "proxy-local: agent-a again"; then
    pa1=$(result "$work/a1" profile) pb1=$(result "$work/b1" profile) pa2=$(result "$work/a2" profile)
    [[ $pa1 != "$pb1" ]] || fail "proxy-local: agent-a and agent-b share a browser ($pa1)"
    [[ $pa1 == "$pa2" ]] || fail "proxy-local: agent-a reconnected to another browser ($pa1, then $pa2)"
    [[ $(result "$work/a2" eval) == 42 ]] || fail "proxy-local: evaluate gave $(result "$work/a2" eval)"
    log "ok: proxy-local: agent-a $pa1, agent-b $pb1, agent-a again the same"
  fi
  agent sc-img-local "$work/none" "${PW[@]}" PW_TIMEOUT_MS=10000
  if [[ $(result "$work/none" ok) == False && $(result "$work/none" error) == *403* ]]; then
    log "ok: proxy-local: a caller without identity gets 403"
  else fail "proxy-local: a caller without identity: $(cat "$work/none" "$work/none.err" | head -c 800)"; fi
  agent sc-img-local "$work/mcp" AGENT_MODE=mcp MCP_URL=http://127.0.0.1:9000/mcp "PW_HEADERS=$(hdr agent-c)"
  expect_ok "$work/mcp" "proxy-local: MCP round trip (agent-c)" || true
fi

# --- 5. the sandbox image, as its SandboxTemplate runs it ---------------------------------------------------
pm "${RUN[@]}" --name sc-img-sandbox --user 1000:1000 -e PORT=9222 -e MCP_PORT=9223 \
  -e CHROMIUM_ARGS=--no-sandbox,--disable-setuid-sandbox,--disable-dev-shm-usage,--disable-gpu \
  "${REF[sandbox]}" >/dev/null
pid=$(pm inspect --format '{{.State.Pid}}' sc-img-sandbox)
for ((i = 0; i < 120; i++)); do
  pm logs sc-img-sandbox 2>/dev/null | grep -q '^SANDBOX_READY' && break
  [[ $(pm inspect --format '{{.State.Running}}' sc-img-sandbox) == true ]] || break
  sleep 0.5
done
if pm logs sc-img-sandbox 2>/dev/null | grep -q '^SANDBOX_READY'; then
  agent sc-img-sandbox "$work/sb" PW_URL=ws://127.0.0.1:9222/
  expect_ok "$work/sb" "sandbox: Playwright client on 9222 (profile $(result "$work/sb" profile))" || true
  agent sc-img-sandbox "$work/sbmcp" AGENT_MODE=mcp MCP_URL=http://127.0.0.1:9223/mcp
  expect_ok "$work/sbmcp" "sandbox: MCP on 9223" || true
else
  fail "sandbox: no SANDBOX_READY"; pm logs sc-img-sandbox 2>&1 | tail -20 >&2
fi

# --- 6. the plugin image ------------------------------------------------------------------------------------
mkdir -m 0777 "$work/plugin"
if pm run --rm --pull=never --network=none --label "$LABEL" --read-only --cap-drop=ALL \
  -v "$work/plugin:/dest" "${REF[plugin]}" /dest/ && [[ -x $work/plugin/sandcanary-plugin ]]; then
  log "ok: plugin: the entrypoint copied $(stat -c %s "$work/plugin/sandcanary-plugin") bytes as uid $(stat -c %u "$work/plugin/sandcanary-plugin")"
  if (cd "$ROOT/test/conformance" && SANDCANARY_PLUGIN_BIN=$work/plugin/sandcanary-plugin SANDCANARY_JOB=placeholder \
    GOFLAGS=-buildvcs=false go test -count=1 -v -run '^TestC17ControllerPath$' . >"$work/c17" 2>&1) &&
    grep -q -- '--- PASS: TestC17ControllerPath' "$work/c17"; then
    log "ok: plugin: the copied binary passes argo's controller start-up path (TestC17ControllerPath)"
  else fail "plugin: TestC17ControllerPath: $(tail -20 "$work/c17")"; fi
else fail "plugin: the entrypoint did not copy the binary"; fi
pm "${RUN[@]}" --name sc-img-plugin -e ARGO_ROLLOUTS_RPC_PLUGIN=metricprovider \
  --entrypoint /plugin/sandcanary-plugin "${REF[plugin]}" >/dev/null
for ((i = 0; i < 40; i++)); do
  line=$(pm logs sc-img-plugin 2>/dev/null | head -1)
  [[ -n $line ]] && break; sleep 0.25
done
if [[ $line =~ ^1\|1\|unix\|/tmp/[^|]+\|netrpc\|$ ]]; then log "ok: plugin: handshake line in its container: $line"
else fail "plugin: no go-plugin handshake line in its container (got '${line:-}')"; fi

if ((failed)); then log "$failed check(s) failed"; exit 1; fi
log "all checks passed in $((SECONDS - t0)) s"
