# The README's install path on the one-node cluster, then the issue's scenarios (sourced by suite.sh, which
# has run the node checks; the `hello` pod and Service in `default` serve the pages the browsers load).
AGENT_IMAGE=ghcr.io/sandcanary/sandcanary-agent:0.1.0
NS=playwright
PAGE=http://hello.default.svc.cluster.local/
WS_URL=ws://sandcanary-proxy.playwright:9000/
MCP_URL=http://sandcanary-proxy.playwright:9000/mcp

k() { kubectl -n "$NS" "$@"; }

# Runs an agent pod (the official Playwright client or MCP SDK, test/node/agent) to completion and prints
# its RESULT lines. LABEL empty: no playwright-id label. Extra KEY=VALUE pairs become its environment.
agent() { # name label [KEY=VALUE...]
  local name="$1" label="$2"; shift 2
  local labels="{}" env='[]' kv
  [ -n "$label" ] && labels="{\"playwright-id\": \"$label\"}"
  for kv in PW_URL="$WS_URL" PW_TARGET_URL="$PAGE" AGENT_EVAL=document.body.innerText "$@"; do
    env="$(jq -c --arg n "${kv%%=*}" --arg v "${kv#*=}" '[.[] | select(.name != $n)] + [{name: $n, value: $v}]' <<<"$env")"
  done
  k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $name, namespace: $NS, labels: $labels}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: agent
      image: $AGENT_IMAGE
      imagePullPolicy: IfNotPresent
      env: $env
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      volumeMounts: [{name: tmp, mountPath: /tmp}]
  volumes: [{name: tmp, emptyDir: {}}]
YAML
}

# Waits for an agent pod to finish; prints its RESULT lines (as JSON, one a line). Status: the pod's.
agent_wait() { # name [timeout]
  local name="$1" deadline=$((SECONDS + ${2:-240})) phase=""
  while ((SECONDS < deadline)); do
    phase="$(k get pod "$name" -o jsonpath='{.status.phase}')"
    case "$phase" in Succeeded|Failed) break ;; esac
    sleep 1
  done
  k logs "$name" 2>&1 | sed -n 's/^RESULT //p'
  [ "$phase" = Succeeded ]
}

agent_run() { # name label [KEY=VALUE...]  -> RESULT lines; fails the step when the agent fails
  local name="$1"
  agent "$@"
  agent_wait "$name" || { k logs "$name" >&2 || true; fail "agent $name failed"; }
}

claim_of() { # id -> the claim's JSON
  k get sandboxclaims -l "playwright-id=$1" -o json | jq -c '.items[0] // empty'
}

# The host PID of a pod's first container (the suite shares the host's PID namespace).
container_pid() { # namespace pod
  local id
  id="$(kubectl -n "$1" get pod "$2" -o jsonpath='{.status.containerStatuses[0].containerID}')"
  id="${id#containerd://}"
  ctr --address "$SANDCANARY_NODE_DIR/containerd/containerd.sock" -n k8s.io tasks list |
    awk -v id="$id" '$1 == id {print $2}'
}

# --- images ----------------------------------------------------------------------------------------
# Built before the cluster starts (make test-node runs `test/node/images.sh build`: it needs Debian's
# mirror, and nothing inside the cluster's namespace reaches out).
step "the images built from the repository's Dockerfiles are imported into the node's containerd"
images_sh="$root/test/node/images.sh"
[ -x "$images_sh" ] || fail "test/node/images.sh is missing: the images cannot be built"
while IFS=$'\t' read -r ref archive; do
  [ -f "$archive" ] || fail "images.sh lists $ref at $archive, which does not exist"
  ctr --address "$SANDCANARY_NODE_DIR/containerd/containerd.sock" -n k8s.io images import "$archive" >/dev/null ||
    fail "could not import $archive"
  echo "imported $ref" >&2
done < <("$images_sh" list)

# --- the README's install section, as written ---------------------------------------------------------
step "README 'Install in a cluster': the commands of its manifests block run unchanged"
install_block="$(awk '/^## Install in a cluster/ {in_sec=1} in_sec && /^```sh/ {blk=""; in_blk=1; next}
  in_blk && /^```/ {in_blk=0; if (blk ~ /kubectl apply -k deploy\/overlays\/agent-sandbox/) {print blk; exit}; next}
  in_blk {blk = blk $0 "\n"}' README.md)"
[ -n "$install_block" ] || fail "no install block with 'kubectl apply -k deploy/overlays/agent-sandbox' in README.md"
echo "$install_block" >&2
bash -euo pipefail -c "$install_block" >&2 || fail "the README's install commands failed"

step "the proxy Deployment becomes Ready with its probes"
k rollout status deploy/sandcanary-proxy --timeout 180s >&2 || { k describe pods -l app.kubernetes.io/name=sandcanary-proxy >&2; fail "proxy not Ready"; }
for pod in $(k get pods -l app.kubernetes.io/name=sandcanary-proxy -o jsonpath='{.items[*].metadata.name}'); do
  ready="$(k get pod "$pod" -o jsonpath='{.status.containerStatuses[0].ready}')"
  [ "$ready" = true ] || fail "$pod not ready"
done

step "the proxy runs as written: uid 65532, read-only root file system, no capabilities, no new privileges"
for pod in $(k get pods -l app.kubernetes.io/name=sandcanary-proxy -o jsonpath='{.items[*].metadata.name}'); do
  pid="$(container_pid "$NS" "$pod")"
  [ -n "$pid" ] || fail "no task for $pod"
  uid="$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")"
  capeff="$(awk '/^CapEff:/ {print $2}' "/proc/$pid/status")"
  nnp="$(awk '/^NoNewPrivs:/ {print $2}' "/proc/$pid/status")"
  rootopts="$(awk '$5 == "/" {print $6}' "/proc/$pid/mountinfo" | tail -n1)"
  echo "$pod: pid $pid uid $uid CapEff $capeff NoNewPrivs $nnp root $rootopts" >&2
  [ "$uid" = 65532 ] || fail "$pod runs as uid $uid"
  [ "$capeff" = 0000000000000000 ] || fail "$pod has capabilities $capeff"
  [ "$nnp" = 1 ] || fail "$pod may gain privileges"
  [[ ",$rootopts," == *",ro,"* ]] || fail "$pod root file system is mounted $rootopts"
done

step "the real agent-sandbox controller fills the SandboxWarmPool with real Chromium sandbox pods"
deadline=$((SECONDS + 300))
until [ "$(k get sandboxwarmpool playwright -o jsonpath='{.status.readyReplicas}')" = 2 ]; do
  ((SECONDS < deadline)) || { k get sandboxes,pods -o wide >&2; k describe pods -l app.kubernetes.io/name=sandcanary-sandbox >&2; fail "warm pool not filled"; }
  sleep 2
done
k get sandboxwarmpool,sandboxes,pods -o wide >&2
for pod in $(k get pods -l app.kubernetes.io/name=sandcanary-sandbox -o jsonpath='{.items[*].metadata.name}'); do
  pid="$(container_pid "$NS" "$pod")"
  pidns="$(readlink "/proc/$pid/ns/pid")"
  found=""
  for c in $(pgrep -f /usr/lib/chromium/chromium || true); do
    [ "$(readlink "/proc/$c/ns/pid" 2>/dev/null)" = "$pidns" ] && { found=$c; break; }
  done
  [ -n "$found" ] || fail "no Chromium process in sandbox pod $pod"
done

step "three agent pods (playwright-id alice, bob, carol): each its own sandbox, the same one on reconnect"
for id in alice bob carol; do agent "agent-$id" "$id" AGENT_RUNS=2; done
declare -A profile
for id in alice bob carol; do
  results="$(agent_wait "agent-$id")" || { echo "$results" >&2; k logs "agent-$id" >&2; fail "agent-$id failed"; }
  echo "agent-$id: $results" >&2
  [ "$(jq -s 'length' <<<"$results")" = 2 ] || fail "agent-$id: want 2 runs"
  [ "$(jq -s '[.[].profile] | unique | length' <<<"$results")" = 1 ] || fail "agent-$id reconnected to another browser"
  profile[$id]="$(jq -rs '.[0].profile' <<<"$results")"
  claim="$(claim_of "$id")"
  [ -n "$claim" ] || fail "no SandboxClaim for $id"
  ip="$(jq -r '.status.sandbox.podIPs[0] // empty' <<<"$claim")"
  [ -n "$ip" ] || fail "claim for $id has no pod IP: $claim"
  # The page the browser loaded saw the sandbox pod's address: the browser runs in the claimed pod.
  jq -e --arg ip "$ip" 'select(.eval | contains("to " + $ip + ":"))' <<<"$results" >/dev/null ||
    fail "agent-$id's page was loaded from elsewhere than its sandbox $ip"
done
[ "$(printf '%s\n' "${profile[@]}" | sort -u | wc -l)" = 3 ] || fail "agents share browsers: ${profile[*]}"
[ "$(k get sandboxclaims -o json | jq '[.items[].status.sandbox.name] | unique | length')" = 3 ] || fail "claims share sandboxes"

step "an unlabelled pod is refused with 403"
agent agent-nolabel ""
out="$(agent_wait agent-nolabel)" && fail "unlabelled pod connected: $out"
grep -q 403 <<<"$out" || fail "unlabelled pod failed without a 403: $out"

step "an MCP client pod does an MCP round trip beside a WebSocket tenant"
agent agent-dave-mcp dave AGENT_MODE=mcp MCP_URL="$MCP_URL" AGENT_EVAL=document.title
agent agent-alice-2 alice AGENT_RUNS=3 AGENT_INTERVAL_MS=500
mcp="$(agent_wait agent-dave-mcp)" || { k logs agent-dave-mcp >&2; fail "MCP agent failed"; }
ws="$(agent_wait agent-alice-2)" || { k logs agent-alice-2 >&2; fail "WebSocket tenant failed beside MCP"; }
echo "mcp: $mcp" >&2
jq -e 'select(.ok and .tool_count > 0 and (.session_id | length) > 0 and (.eval | contains("sandcanary hello")))' <<<"$mcp" >/dev/null ||
  fail "MCP round trip incomplete: $mcp"
[ "$(jq -rs '[.[].profile] | unique | .[]' <<<"$ws")" = "${profile[alice]}" ] || fail "alice lost her sandbox beside MCP"

step "idle reaping: the proxy deletes idle claims and their sandbox pods go away"
# Test tuning, not install: the manifests' IDLE_TTL is 10m.
k set env deploy/sandcanary-proxy IDLE_TTL=20s IDLE_CHECK_INTERVAL=5s >&2
k rollout status deploy/sandcanary-proxy --timeout 180s >&2 || fail "proxy not Ready after the IDLE_TTL change"
bob_sandbox="$(claim_of bob | jq -r '.status.sandbox.name')"
k get pod "$bob_sandbox" >/dev/null || fail "bob's sandbox pod $bob_sandbox does not exist"
deadline=$((SECONDS + 180))
until [ -z "$(claim_of bob)" ] && ! k get pod "$bob_sandbox" >/dev/null 2>&1; do
  ((SECONDS < deadline)) || { k get sandboxclaims,sandboxes,pods >&2; k logs -l app.kubernetes.io/name=sandcanary-proxy --tail 30 >&2; fail "bob's idle claim or sandbox pod is still there"; }
  sleep 2
done
echo "bob's claim deleted and sandbox pod $bob_sandbox gone after $((SECONDS - STEP_START))s" >&2

step "identity from real pod IPs: a new pod reusing a deleted pod's IP gets its own sandbox"
agent agent-erin erin AGENT_HOLD=true
deadline=$((SECONDS + 120))
until k logs agent-erin 2>/dev/null | grep -q AGENT_DONE; do ((SECONDS < deadline)) || fail "erin did not finish"; sleep 1; done
erin_ip="$(k get pod agent-erin -o jsonpath='{.status.podIP}')"
erin_profile="$(k logs agent-erin | sed -n 's/^RESULT //p' | jq -r .profile)"
k delete pod agent-erin --grace-period 1 --wait=true >&2
# host-local hands out addresses round-robin; point its cursor just before erin's address so the next pod
# gets it, as a busy node would sooner or later.
ipam="$SANDCANARY_NODE_DIR/cni/ipam/sandcanary"
# The API object goes before the kubelet has torn down the pod's network: wait until host-local released it.
deadline=$((SECONDS + 60))
while [ -e "$ipam/$erin_ip" ]; do ((SECONDS < deadline)) || fail "erin's address $erin_ip was not released"; sleep 0.5; done
prev="${erin_ip%.*}.$(( ${erin_ip##*.} - 1 ))"
printf %s "$prev" >"$ipam/last_reserved_ip.0"   # no newline: host-local parses the whole file
frank="$(agent_run agent-frank frank)"
frank_ip="$(k get pod agent-frank -o jsonpath='{.status.podIP}')"
echo "erin $erin_ip $erin_profile; frank $frank_ip $(jq -r .profile <<<"$frank")" >&2
[ "$frank_ip" = "$erin_ip" ] || { ls "$ipam" >&2; fail "frank got $frank_ip, not erin's $erin_ip (IP reuse not arranged)"; }
[ "$(jq -r .profile <<<"$frank")" != "$erin_profile" ] || fail "frank got erin's sandbox on her old IP"
frank_claim_ip="$(claim_of frank | jq -r '.status.sandbox.podIPs[0] // empty')"
[ -n "$frank_claim_ip" ] || fail "no claim for frank"
jq -e --arg ip "$frank_claim_ip" 'select(.eval | contains("to " + $ip + ":"))' <<<"$frank" >/dev/null ||
  fail "frank was not served by his own claim's sandbox $frank_claim_ip: $frank"
k delete pod agent-frank --wait=false >/dev/null

step "sandcanary-bench cold / warm through the proxy's Service (two replicas) on the real warm pool"
admin_token="$(k get secret sandcanary-proxy-tokens -o jsonpath='{.data.session-api-token}' | base64 -d)"
identity_token="$(k get secret sandcanary-proxy-tokens -o jsonpath='{.data.identity-token}' | base64 -d)"
# The Service, as a user's bench reaches it: data and session API requests land on either replica (a replica
# shows the sessions the other serves through the backend, docs/session-api.md).
[ "$(k get deploy sandcanary-proxy -o jsonpath='{.status.readyReplicas}')" = 2 ] || fail "want two proxy replicas behind the Service"
svc="$(k get service sandcanary-proxy -o jsonpath='{.spec.clusterIP}')"
bench_bin="${SANDCANARY_BENCH_BIN:?SANDCANARY_BENCH_BIN (the sandcanary-bench binary) is not set}"
SANDCANARY_ADMIN_TOKEN="$admin_token" SANDCANARY_IDENTITY_TOKEN="$identity_token" \
  "$bench_bin" run --proxy "http://$svc:9000" --admin "http://$svc:9090" --scenarios cold,warm \
  --samples "${NODE_BENCH_SAMPLES:-4}" --page-url "$PAGE" --expect-title "sandcanary hello" --format markdown \
  --json-out "$SANDCANARY_NODE_DIR/bench.json" >&2 || fail "sandcanary-bench failed"
if [ -n "${SANDCANARY_NODE_BENCH_OUT:-}" ]; then cp "$SANDCANARY_NODE_DIR/bench.json" "$SANDCANARY_NODE_BENCH_OUT"; fi

step "README: the local overlay (proxy-local, sandboxes inside the proxy pod) serves an agent pod"
# The node has 2 CPUs: proxy-local requests one. Every claim is idle by now (IDLE_TTL=20s): wait until the
# proxy has reaped them all, so only the warm pool is left beside it.
deadline=$((SECONDS + 120))
until [ "$(k get sandboxclaims -o name | wc -l)" = 0 ]; do
  ((SECONDS < deadline)) || { k get sandboxclaims >&2; fail "idle claims not reaped"; }
  sleep 2
done
kubectl apply -k deploy/overlays/local >&2
k rollout status deploy/sandcanary-proxy --timeout 240s >&2 || { k describe pods -l app.kubernetes.io/name=sandcanary-proxy >&2; fail "proxy-local not Ready"; }
local_out="$(agent_run agent-local lisa)"
echo "local: $local_out" >&2
proxy_ip="$(k get pods -l app.kubernetes.io/name=sandcanary-proxy -o jsonpath='{.items[0].status.podIP}')"
jq -e --arg ip "$proxy_ip" 'select(.ok and (.eval | contains("to " + $ip + ":")))' <<<"$local_out" >/dev/null ||
  fail "the local backend's browser did not load the page from the proxy pod $proxy_ip: $local_out"
