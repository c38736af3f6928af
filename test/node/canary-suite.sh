#!/usr/bin/env bash
# The canary story on the one-node cluster (`make test-node-canary`: `test/node/cluster.sh run --
# test/node/canary-suite.sh`). The README's install section and "Run a canary" commands, then a canary
# rollout of the proxy judged by the real plugin in the real Argo Rollouts controller, while agent pods keep
# using the stable proxy:
#   v1 (the Rollout as applied) Healthy; v2 (a new image) walks setWeight / pause / analysis / bake and is
#   promoted; the LLM template reads both tracks' pod logs through the kubelet; v3 (a configuration mistake:
#   IDENTITY=pods,token) is aborted by the analysis and exactly one issue lands on the fake GitHub, a pod.
# Argo's controller is a pod (test/node/argo.sh, README "Register the plugin"), the plugin inside it from
# the plugin image. Test tuning only (said where it is done): 5 samples and 2 s polling in the templates,
# short pauses, the analysis arguments pointed at the in-cluster page and the fake GitHub.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
# shellcheck source=suite-lib.sh
source "$here/suite-lib.sh"

NS=playwright
AGENT_IMAGE=ghcr.io/sandcanary/sandcanary-agent:0.1.0
PROXY_IMAGE=ghcr.io/sandcanary/sandcanary-proxy:0.1.0
V2_IMAGE=ghcr.io/sandcanary/sandcanary-proxy:0.1.1
PAGE=http://hello.default.svc.cluster.local/
SAAS=http://saas-fake.saas.svc.cluster.local:8080
GH_OWNER=example-org GH_REPO=sandcanary-proxy
saas_bin="${SANDCANARY_SAAS_FAKE_BIN:?SANDCANARY_SAAS_FAKE_BIN (test/kube/cmd/saas-fake) is not set}"
ctr_() { ctr --address "$SANDCANARY_NODE_DIR/containerd/containerd.sock" -n k8s.io "$@"; }
k() { kubectl -n "$NS" "$@"; }
report="$SANDCANARY_NODE_DIR/canary-report.txt"
: >"$report"
note() { echo "$*" | tee -a "$report" >&2; }

# --- images and the page ------------------------------------------------------------------------------
step "images imported; v2 is a new tag of the proxy image; the page and the SaaS fakes as pods"
while IFS=$'\t' read -r ref archive; do
  case "$ref" in *sandcanary-proxy-local*|*sandcanary-plugin*|*argo-rollouts*) continue ;; esac  # argo.sh imports Argo's
  ctr_ images import "$archive" >/dev/null || fail "could not import $archive"
done < <("$root/test/node/images.sh" list)
ctr_ images tag --force "$PROXY_IMAGE" "$V2_IMAGE" >/dev/null
"$here/binimage.sh" sandcanary.local/saas-fake:1 "$SANDCANARY_NODE_DIR/images/saas-fake.tar" \
  /usr/local/bin/saas-fake "$saas_bin"
ctr_ images import "$SANDCANARY_NODE_DIR/images/saas-fake.tar" >/dev/null
GH_TOKEN="$(openssl rand -hex 20)" LLM_KEY="$(openssl rand -hex 20)"
kubectl create namespace saas >/dev/null
kubectl -n saas create secret generic saas-fake --from-literal=github-token="$GH_TOKEN" --from-literal=llm-key="$LLM_KEY" >/dev/null
kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: hello, namespace: default, labels: {app: hello}}
spec:
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532}
  containers:
    - {name: hello, image: sandcanary.local/hello:1, imagePullPolicy: Never, ports: [{containerPort: 8080}],
       readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {name: hello, namespace: default}
spec: {selector: {app: hello}, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Pod
metadata: {name: saas-fake, namespace: saas, labels: {app: saas-fake}}
spec:
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532}
  containers:
    - name: saas-fake
      image: sandcanary.local/saas-fake:1
      imagePullPolicy: Never
      args: [-listen, ":8080", -owner, $GH_OWNER, -repo, $GH_REPO]
      env:
        - {name: GITHUB_TOKEN, valueFrom: {secretKeyRef: {name: saas-fake, key: github-token}}}
        - {name: LLM_API_KEY, valueFrom: {secretKeyRef: {name: saas-fake, key: llm-key}}}
      readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {name: saas-fake, namespace: saas}
spec: {selector: {app: saas-fake}, ports: [{port: 8080, targetPort: 8080}]}
YAML
kubectl -n saas wait --for condition=Ready --timeout 90s pod/saas-fake >&2 || fail "saas-fake not Ready"
kubectl -n default wait --for condition=Ready --timeout 90s pod/hello >&2 || fail "hello not Ready"
saas_state() { curl -fsS --max-time 10 "http://$(kubectl -n saas get svc saas-fake -o jsonpath='{.spec.clusterIP}'):8080/_fake/state"; }

# --- README: install, then "Run a canary" ----------------------------------------------------------------
step "README 'Install in a cluster': the manifests block, unchanged; the warm pool fills"
install_block="$(awk '/^## Install in a cluster/ {in_sec=1} in_sec && /^```sh/ {blk=""; in_blk=1; next}
  in_blk && /^```/ {in_blk=0; if (blk ~ /kubectl apply -k deploy\/overlays\/agent-sandbox/) {print blk; exit}; next}
  in_blk {blk = blk $0 "\n"}' README.md)"
[ -n "$install_block" ] || fail "no install block in README.md"
bash -euo pipefail -c "$install_block" >&2 || fail "the README's install commands failed"
k rollout status deploy/sandcanary-proxy --timeout 180s >&2 || fail "proxy Deployment not Ready"
deadline=$((SECONDS + 300))
until [ "$(k get sandboxwarmpool playwright -o jsonpath='{.status.readyReplicas}')" = 2 ]; do
  ((SECONDS < deadline)) || { k get sandboxes,pods -o wide >&2; fail "warm pool not filled"; }
  sleep 2
done

step "Argo Rollouts v1.9.1 as a pod, installed by README 'Register the plugin' (file variant), the fakes as its SaaS"
# test/node/argo.sh runs the README's kustomization and commands as written (see test-node-argo). The operator's
# part of an install that points the plugin at other endpoints: SANDCANARY_GITHUB_API_URL and
# SANDCANARY_LLM_BASE_URLS on the controller (the lines controller-patch.yaml shows commented out), and the
# LLM key in Secret sandcanary-plugin-tokens beside the GitHub token.
cat >"$SANDCANARY_NODE_DIR/argo-saas-patch.yaml" <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: argo-rollouts, namespace: argo-rollouts}
spec:
  template:
    spec:
      containers:
        - name: argo-rollouts
          env:
            - {name: SANDCANARY_GITHUB_API_URL, value: "$SAAS"}
            - {name: SANDCANARY_LLM_BASE_URLS, value: "$SAAS/v1"}
YAML
GITHUB_TOKEN="$GH_TOKEN" ARGO_EXTRA_PATCH="$SANDCANARY_NODE_DIR/argo-saas-patch.yaml" "$here/argo.sh" install-here file ||
  fail "the Argo Rollouts install failed"
kubectl -n argo-rollouts patch secret sandcanary-plugin-tokens --type merge -p "{\"stringData\": {\"llm-api-key\": \"$LLM_KEY\"}}" >&2
kubectl -n argo-rollouts rollout restart deploy/argo-rollouts >&2
kubectl -n argo-rollouts rollout status deploy/argo-rollouts --timeout 180s >&2 || fail "the controller did not restart"
controller_log() { kubectl -n argo-rollouts logs deploy/argo-rollouts --tail "${1:-30}" 2>&1; }
deadline=$((SECONDS + 60))
until controller_log 200 | grep -q "Copied plugin from /home/argo-rollouts/plugins/sandcanary-plugin"; do
  ((SECONDS < deadline)) || { controller_log >&2; fail "the restarted controller did not load the plugin"; }
  sleep 1
done

step "README 'Run a canary': the templates and the Rollout, as written; the Deployment hands over"
canary_block="$(awk '/^## Run a canary/ {in_sec=1} in_sec && /^```sh/ {blk=""; in_blk=1; next}
  in_blk && /^```/ {print blk; exit} in_blk {blk = blk $0 "\n"}' README.md)"
apply_cmds="$(grep -E '^kubectl apply' <<<"$canary_block" || true)"
scale_cmd="$(grep -E '^kubectl -n playwright scale deployment/sandcanary-proxy' <<<"$canary_block" || true)"
[ -n "$apply_cmds" ] || fail "no kubectl apply in README 'Run a canary'"
echo "$apply_cmds" >&2
bash -euo pipefail -c "$apply_cmds" >&2 || fail "the README's canary commands failed"
rollout_json() { k get rollout sandcanary-proxy -o json; }
wait_rollout() { # what timeout jq-condition
  local what="$1" deadline=$((SECONDS + $2)) cond="$3" s
  while :; do
    s="$(rollout_json)"
    jq -e "$cond" <<<"$s" >/dev/null && return 0
    ((SECONDS < deadline)) || { jq .status <<<"$s" >&2; controller_log >&2; fail "rollout: $what not reached"; }
    sleep 2
  done
}
healthy='.status.phase == "Healthy" and .status.stableRS == .status.currentPodHash and (.status.availableReplicas // 0) == 2'
wait_rollout "v1 Healthy" 240 "$healthy"
v1="$(rollout_json | jq -r .status.stableRS)"
[ -n "$scale_cmd" ] || fail "README 'Run a canary' does not scale the Deployment down"
bash -euo pipefail -c "$scale_cmd" >&2 || fail "$scale_cmd failed"
[ "$(k get deploy sandcanary-proxy -o jsonpath='{.spec.replicas}')" = 0 ] || fail "the Deployment still runs beside the Rollout"
note "v1 Healthy: stableRS $v1"

step "test tuning: fewer samples, 2 s polls; short pauses; the page, the fakes; the LLM template in the bake"
for t in sandcanary-statistical sandcanary-threshold; do  # 8 samples: a verdict that survives the shared machine's outliers
  k get analysistemplate "$t" -o json |
    jq '.spec.metrics[0].provider.plugin["sandcanary/sandcanary"] |= (.samples = 8 | .pauseMs = 100 | .pollSeconds = 2)' |
    k replace -f - >/dev/null
done
# The LLM run is what shows the pod logs reaching the model: it benches 5 warm sessions only (during the
# bake the node's 2 CPUs, 250m per sandbox pod, leave no room for a second series of cold starts), files no
# issue, and runs as a dry run (below): a verdict from one series on a loaded node must not gate v2.
k get analysistemplate sandcanary-llm -o json |
  jq '.spec.metrics[0].provider.plugin["sandcanary/sandcanary"] |= (.samples = 5 | .scenarios = ["warm"] | .pauseMs = 100 | .pollSeconds = 2 | del(.github))' |
  k replace -f - >/dev/null
# Every analysis of the Rollout: page-url and github-api-url; the background analysis of the bake runs the
# LLM template as a dry run (the threshold one is covered by test-argo-e2e) with the fake LLM's base URL; pauses 5 s
# (warm-up) and 120 s (bake). Not a new revision: the pod template is unchanged.
rollout_json | jq --arg page "$PAGE" --arg gh "$SAAS" '
  def args: map(if .name == "page-url" then .value = $page else . end) + [{name: "github-api-url", value: $gh}];
  .spec.strategy.canary.analysis.args |= args + [{name: "llm-base-url", value: ($gh + "/v1")}]
  | .spec.strategy.canary.analysis.templates = [{templateName: "sandcanary-llm"}]
  | .spec.strategy.canary.analysis.dryRun = [{metricName: "canary-bench"}]
  | .spec.strategy.canary.steps |= [ .[] | if .analysis then .analysis.args |= args
      elif .pause then .pause.duration = (if .pause.duration == "2m" then "5s" else "120s" end) else . end ]' |
  k replace -f - >/dev/null

# --- agents on the stable proxy -----------------------------------------------------------------------
step "agent pods keep using the proxy (Service sandcanary-proxy) through the whole rollout"
agent_pod() { # name id
  k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: $NS, labels: {playwright-id: $2}}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532}
  containers:
    - name: agent
      image: $AGENT_IMAGE
      imagePullPolicy: IfNotPresent
      env:
        - {name: PW_URL, value: "ws://sandcanary-proxy.playwright:9000/"}
        - {name: PW_TARGET_URL, value: "$PAGE"}
        - {name: AGENT_RUNS, value: "100000"}
        - {name: AGENT_INTERVAL_MS, value: "2000"}
        - {name: AGENT_PROFILE, value: "false"}
        - {name: PW_TIMEOUT_MS, value: "30000"}
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      volumeMounts: [{name: tmp, mountPath: /tmp}]
  volumes: [{name: tmp, emptyDir: {}}]
YAML
}
agent_pod agent-ann ann
deadline=$((SECONDS + 120))
until k logs agent-ann 2>/dev/null | grep -q '^RESULT .*"ok":true'; do
  ((SECONDS < deadline)) || { k logs agent-ann >&2 || true; fail "agent-ann never succeeded"; }
  sleep 2
done
agent_counts() { k logs agent-ann 2>/dev/null | sed -n 's/^RESULT //p' | jq -s '{runs: length, failed: map(select(.ok | not)) | length}'; }

# --- reading a verdict as README "Read the verdict" says --------------------------------------------------
runs_of() { # pod-template-hash rollout-type -> run names
  k get analysisrun -l "rollouts-pod-template-hash=$1,rollout-type=$2" -o jsonpath='{.items[*].metadata.name}'
}
verdict() { # run -> prints phase, value, metadata of the last measurement, as README says to read it
  local run="$1" m
  k get analysisrun >&2
  m="$(k get analysisrun "$run" -o jsonpath='{.status.metricResults[0].measurements[-1]}')"
  [ -n "$m" ] || fail "$run has no measurement"
  note "$run: phase $(jq -r .phase <<<"$m"), value $(jq -r .value <<<"$m"), summary: $(jq -r '.metadata["sandcanary.summary"] // .message' <<<"$m")"
  echo "$m"
}

# --- v2: a healthy new image ----------------------------------------------------------------------------
step "v2 (a new image): setWeight 50, pause, inline statistical analysis Successful, bake, promoted"
k patch rollout sandcanary-proxy --type json \
  -p "[{\"op\": \"replace\", \"path\": \"/spec/template/spec/containers/0/image\", \"value\": \"$V2_IMAGE\"}]" >&2
wait_rollout "v2 canary at weight 50" 180 '.status.currentPodHash != .status.stableRS and (.status.currentStepIndex // 0) >= 1'
v2="$(rollout_json | jq -r .status.currentPodHash)"
# Both tracks run now: stable v1 and canary v2 carry the sandcanary.dev/track labels of the Rollout.
wait_rollout "v2 inline analysis done" 600 '(.status.currentStepIndex // 0) >= 3 or .status.abort == true'
[ "$(rollout_json | jq -r '.status.abort // false')" = false ] || fail "v2 (healthy) was aborted: $(rollout_json | jq -c .status)"
step_run="$(runs_of "$v2" Step)"
[ -n "$step_run" ] && [ "$(wc -w <<<"$step_run")" = 1 ] || fail "want one inline AnalysisRun for v2, got '$step_run'"
[ "$(k get analysisrun "$step_run" -o jsonpath='{.status.phase}')" = Successful ] || fail "v2 inline run is not Successful"
m="$(verdict "$step_run")"
jq -e '.phase == "Successful" and (.value | tonumber) >= 70 and (.metadata["sandcanary.judge"] | length) > 0' <<<"$m" >/dev/null ||
  fail "v2's measurement: $m"

step "the LLM template as v2's background analysis: both tracks' pod logs read through the kubelet"
deadline=$((SECONDS + 240))
bg=""
while :; do
  bg="$(runs_of "$v2" Background)"
  [ -n "$bg" ] && [[ "$(k get analysisrun "$bg" -o jsonpath='{.status.phase}')" =~ ^(Successful|Failed|Error|Inconclusive)$ ]] && break
  ((SECONDS < deadline)) || fail "v2's background (LLM) run did not finish: '$bg'"
  sleep 3
done
m="$(verdict "$bg")"
jq -e '(.metadata["sandcanary.judge"] | test("^llm")) and (.metadata["sandcanary.llm_promote"] == "true")' <<<"$m" >/dev/null ||
  fail "v2's LLM measurement did not get the model's answer: $m"
logs="$(jq -r '.metadata["sandcanary.podLogs"]' <<<"$m")"
[[ "$logs" =~ ^stable:\ [1-9][0-9]*\ B\ from\ sandcanary-proxy-.*\;\ canary:\ [1-9][0-9]*\ B\ from\ sandcanary-proxy- ]] ||
  fail "v2's LLM run did not read both tracks' logs: $logs"
state="$(saas_state)"
jq -e '.llm_calls >= 1 and (.llm_bad | length) == 0' <<<"$state" >/dev/null || fail "fake LLM: $(jq -c '{llm_calls, llm_bad}' <<<"$state")"
prompt="$(jq -r '.llm_prompts[-1]' <<<"$state")"
stable_pod="$(sed -E 's/^stable: [0-9]+ B from ([^;]+);.*/\1/' <<<"$logs")"
canary_pod="$(sed -E 's/.*canary: [0-9]+ B from (.+)$/\1/' <<<"$logs")"
[[ "$(k get pod "$stable_pod" -o jsonpath='{.metadata.labels.rollouts-pod-template-hash}')" == "$v1" ]] || fail "$stable_pod is not a v1 pod"
[[ "$(k get pod "$canary_pod" -o jsonpath='{.metadata.labels.rollouts-pod-template-hash}')" == "$v2" ]] || fail "$canary_pod is not a v2 pod"
# Each log comes fenced as untrusted text, its label sanitised ("stable proxy pod logs _<pod>_<container>").
for pod in "UNTRUSTED [0-9a-f]+ stable proxy pod logs _${stable_pod}_" "UNTRUSTED [0-9a-f]+ canary proxy pod logs _${canary_pod}_"; do
  grep -qE "$pod" <<<"$prompt" || { echo "$prompt" | head -c 3000 >&2; fail "the LLM prompt lacks '$pod'"; }
done
[ "$(grep -c '^¦ {"timestamp"' <<<"$prompt")" -ge 10 ] || fail "the LLM prompt carries too few proxy log lines"
note "LLM run $bg (dry run): phase $(jq -r .phase <<<"$m") ($(jq -r '.metadata["sandcanary.summary"]' <<<"$m")), pod logs: $logs; the prompt carried the logs of $stable_pod (stable) and $canary_pod (canary)"

wait_rollout "v2 promoted" 400 "$healthy and .status.stableRS != \"$v1\""
note "v2 promoted: stableRS $v2"
[ -z "$(saas_state | jq -r '.issues[]?.Number')" ] || fail "an issue was filed for the healthy v2"

# --- v3: a configuration mistake ------------------------------------------------------------------------
step "v3 (IDENTITY=pods,token: every token caller waits for the pod lookup first) is aborted by the analysis"
idx="$(rollout_json | jq '.spec.template.spec.containers[0].env | map(.name) | index("IDENTITY")')"
k patch rollout sandcanary-proxy --type json \
  -p "[{\"op\": \"replace\", \"path\": \"/spec/template/spec/containers/0/env/$idx/value\", \"value\": \"pods,token\"}]" >&2
wait_rollout "v3 aborted" 600 '(.status.abort == true and .status.phase == "Degraded") or ([.status.pauseConditions[]?.reason] | index("InconclusiveAnalysisRun"))'
[ "$(rollout_json | jq -r .status.phase)" = Degraded ] ||
  { k get analysisrun >&2; fail "v3 was not aborted (an Inconclusive analysis pauses the Rollout): $(rollout_json | jq -c .status.message)"; }
v3="$(rollout_json | jq -r .status.currentPodHash)"
[ "$(rollout_json | jq -r .status.stableRS)" = "$v2" ] || fail "stable is no longer v2 after the abort"
step_run="$(runs_of "$v3" Step)"
[ "$(k get analysisrun "$step_run" -o jsonpath='{.status.phase}')" = Failed ] || fail "v3 inline run $step_run is not Failed"
m="$(verdict "$step_run")"
jq -e '.phase == "Failed" and (.metadata["sandcanary.issue"] | startswith("created "))' <<<"$m" >/dev/null ||
  fail "v3's measurement: $m"
state="$(saas_state)"
[ "$(jq '.issues | length' <<<"$state")" = 1 ] || fail "want exactly one issue: $(jq -c '.issues | map(.Title)' <<<"$state")"
body="$(jq -r '.issues[0].Body' <<<"$state")"
for want in "$v3" "|---" '```mermaid' "connect: to the proxy"; do
  grep -qF -- "$want" <<<"$body" || { echo "$body" >&2; fail "the issue lacks '$want'"; }
done
note "v3 aborted (Degraded), stable stays $v2; issue #$(jq -r '.issues[0].Number' <<<"$state"): $(jq -r '.issues[0].Title' <<<"$state")"

step "a WebSocket on a proxy pod that is deleted: how long the client keeps working, then waits for a new one"
k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: agent-kim, namespace: $NS, labels: {playwright-id: kim}}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532}
  containers:
    - name: agent
      image: $AGENT_IMAGE
      imagePullPolicy: IfNotPresent
      env:
        - {name: AGENT_MODE, value: keep}
        - {name: PW_URL, value: "ws://sandcanary-proxy.playwright:9000/"}
        - {name: PW_TARGET_URL, value: "$PAGE"}
        - {name: PW_TIMEOUT_MS, value: "120000"}
        - {name: AGENT_HOLD, value: "true"}
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      volumeMounts: [{name: tmp, mountPath: /tmp}]
  volumes: [{name: tmp, emptyDir: {}}]
YAML
deadline=$((SECONDS + 120))
until k logs agent-kim 2>/dev/null | grep -q '^KEEP_OPEN'; do
  ((SECONDS < deadline)) || { k logs agent-kim >&2 || true; fail "agent-kim never opened its session"; }
  sleep 1
done
admin_token="$(k get secret sandcanary-proxy-tokens -o jsonpath='{.data.session-api-token}' | base64 -d)"
serving=""
for ip_pod in $(k get pods -l app.kubernetes.io/name=sandcanary-proxy --field-selector status.phase=Running \
    -o jsonpath='{range .items[*]}{.status.podIP}={.metadata.name}{" "}{end}'); do
  s="$(curl -fsS --max-time 5 -H "Authorization: Bearer $admin_token" "http://${ip_pod%%=*}:9090/v1/sessions/kim" || true)"
  jq -e '.open_connections >= 1 and (.elsewhere | not)' <<<"$s" >/dev/null 2>&1 && serving="${ip_pod#*=}"
done
[ -n "$serving" ] || fail "no proxy pod reports kim's open session"
deleted_at="$(date +%s%3N)"
k delete pod "$serving" --wait=false >&2
deadline=$((SECONDS + 180))
until k logs agent-kim 2>/dev/null | grep -q '^RESULT'; do
  ((SECONDS < deadline)) || { k logs agent-kim >&2 || true; fail "agent-kim did not report"; }
  sleep 1
done
keep="$(k logs agent-kim | sed -n 's/^RESULT //p' | tail -n1)"
jq -e .ok <<<"$keep" >/dev/null || fail "agent-kim did not get a working session again: $keep"
note "proxy pod $serving deleted: kim's WebSocket kept working for $(( $(jq .last_ok_at <<<"$keep") - deleted_at )) ms (WS_SHUTDOWN_GRACE), was closed after $(( $(jq .closed_at <<<"$keep") - deleted_at )) ms ($(jq -r .error <<<"$keep")), and the client had a working session again $(jq .wait_ms <<<"$keep") ms later ($(jq .attempts <<<"$keep") attempts)"
k delete pod agent-kim --wait=false >/dev/null

step "the agents kept working through the rollout and the abort"
counts="$(agent_counts)"
note "agent-ann: $(jq -r '"\(.runs) sessions, \(.failed) failed"' <<<"$counts")"
k logs agent-ann | sed -n 's/^RESULT //p' | jq -c 'select(.ok | not)' | head -5 >&2 || true
jq -e '.runs >= 20' <<<"$counts" >/dev/null || fail "agent-ann ran too few sessions: $counts"

k delete pod agent-ann --wait=false >/dev/null
summary
cat "$report" >&2
