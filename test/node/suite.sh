#!/usr/bin/env bash
# The node suite: runs inside the one-node cluster (`test/node/cluster.sh run -- test/node/suite.sh`, which
# exports KUBECONFIG, SANDCANARY_NODE_DIR, PATH with kubectl). Each step names what it proves; the first
# failing step stops the suite with its evidence (the cluster is torn down by cluster.sh either way).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
# shellcheck source=suite-lib.sh
source "$here/suite-lib.sh"

# --- the node itself ---------------------------------------------------------------------------------
step "node Ready, addressed by its pinned InternalIP"
addr="$(kubectl get node sc-node -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')"
[ "$addr" = 10.213.0.1 ] || fail "InternalIP is '$addr', want 10.213.0.1"

step "a pod runs non-root on a read-only root file system; its Service answers through Service DNS"
kubectl apply -f - <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: hello, namespace: default, labels: {app: hello}}
spec:
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: hello
      image: sandcanary.local/hello:1
      imagePullPolicy: Never
      ports: [{containerPort: 8080}]
      readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
---
apiVersion: v1
kind: Service
metadata: {name: hello, namespace: default}
spec:
  selector: {app: hello}
  ports: [{port: 80, targetPort: 8080}]
YAML
kubectl wait --for condition=Ready --timeout 90s pod/hello || { kubectl describe pod hello; fail "hello not Ready"; }
out="$(run_pod default hello-client sandcanary.local/hello:1 -- hello get http://hello.default.svc.cluster.local/)" ||
  fail "client pod failed: $out"
[[ "$out" == "200 "*"hello from hello to 10.213.0."* ]] || fail "client through Service DNS got: $out"

step "kubectl logs reaches the kubelet (API server -> node InternalIP, TLS checked against the test CA)"
logs="$(kubectl logs hello)"
grep -q 'request from 10.213.0.' <<<"$logs" || fail "kubectl logs hello: $logs"

step "closed: names outside the cluster do not resolve from a pod"
if out="$(run_pod default resolve-out sandcanary.local/hello:1 -- hello resolve example.com)"; then
  fail "example.com resolved inside the cluster: $out"
fi

if [ -n "${SANDCANARY_NODE_SMOKE_ONLY:-}" ]; then
  summary
  exit 0
fi

# --- the README's install path, then the scenarios -----------------------------------------------------
source "$here/scenarios.sh"
summary
