#!/usr/bin/env bash
# Every manifest of the repository against one real kube-apiserver (test/kube/apiserver.sh), then the
# properties a dry run cannot see. Run by `make test-manifests`.
#
#   1. server-side dry run (test/kube/validate-manifests.sh) of: every kustomization under deploy/ (the base,
#      each backend overlay), every plain YAML file under deploy/ (CRDs, deploy/rbac, the two
#      argo-rollouts-config files on their own), analysis-templates/ and rollouts/ when they exist, and both
#      argo-rollouts Components applied to Argo Rollouts' own install.yaml (from the Go module cache);
#   2. the pod templates inside SandboxTemplates (schemaless in the CRD) validated as real Pods;
#   3. each backend overlay applied for real, then SubjectAccessReviews (kubectl auth can-i --as the proxy's
#      ServiceAccount): everything deploy/rbac/<backend>.yaml grants, leader-election Leases, patch on the
#      backend's objects; and nothing obviously beyond (secrets, deleting pods);
#      and then the real sandcanary-proxy binary started with exactly the environment the overlay's Deployment
#      gives it, under that ServiceAccount's token: it must become ready (pod watch synced) and create its
#      backend object for a session (cluster backends with CRDs here: agent-sandbox, openshell, kars, isola),
#      or, for the local overlay, start a real sandbox (Chromium from deploy/sandbox, needs `make setup-node`);
#   4. negative: every file in test/manifests/invalid/ must be rejected by validate-manifests.sh.
#
# SANDCANARY_PROXY_BIN overrides the proxy binary (default: $CARGO_TARGET_DIR/debug/sandcanary-proxy, which
# `make test-manifests` builds first).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
kube_dir="$root/test/kube"
log() { echo "test-manifests: $*" >&2; }

if [ -z "${SANDCANARY_KUBE_DIR:-}" ] || [ -z "${SANDCANARY_KUBE_BIN:-}" ]; then
  exec "$kube_dir/apiserver.sh" run -- "$0" "$@"
fi
kubectl() { "$SANDCANARY_KUBE_BIN/kubectl" "$@"; }
validate() { "$kube_dir/validate-manifests.sh" "$@"; }
failed=0
fail() { log "FAIL: $*"; failed=$((failed + 1)); }

work="$(mktemp -d)" local_tmp=""
trap 'rm -rf "$work" ${local_tmp:+"$local_tmp"}' EXIT

# --- 1. server-side dry run of everything -------------------------------------------------------------
argo_dir="$(cd "$kube_dir" && go list -m -f '{{.Dir}}' github.com/argoproj/argo-rollouts)"
paths=("$root/deploy" "$root/deploy/argo-rollouts/file/argo-rollouts-config.yaml"
       "$root/deploy/argo-rollouts/https/argo-rollouts-config.yaml")
for d in analysis-templates rollouts; do
  if [ -d "$root/$d" ]; then paths+=("$root/$d"); else log "no $d/ directory yet: nothing to validate there"; fi
done
# The argo-rollouts Components, the way a user includes them: on Argo's install.yaml, in its namespace.
for variant in file https https+https-ca; do
  k="$work/argo-rollouts-$variant"
  mkdir -p "$k"
  components=""
  for c in ${variant//+/ }; do components+="${components:+, }$(realpath --relative-to="$k" "$root/deploy/argo-rollouts/$c")"; done
  cp "$argo_dir/manifests/install.yaml" "$k/install.yaml"
  chmod u+w "$k/install.yaml"
  cat >"$k/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: argo-rollouts
resources: [install.yaml]
components: [$components]
YAML
  paths+=("$k")
done
validate "${paths[@]}" || fail "server-side dry run rejected manifests (reasons above)"

# The file variant's ConfigMap after kustomize must still say what deploy/argo-rollouts/file says, and the
# controller must mount the directory the location points into, filled by the init container.
kubectl kustomize "$work/argo-rollouts-file" | kubectl create --dry-run=client -f - -o json >"$work/argo-file.json"
python3 "$here/objects.py" argo-file "$work/argo-file.json" || fail "argo-rollouts file variant (reasons above)"

# --- 2. SandboxTemplate pod templates as real Pods ------------------------------------------------------
for overlay in "$root"/deploy/overlays/*/; do
  name="$(basename "$overlay")"
  kubectl kustomize "$overlay" | kubectl create --dry-run=client -f - -o json >"$work/$name.json"
  if [ "$(python3 "$here/objects.py" pods "$work/$name.json" "$work/pods-$name.json")" -gt 0 ]; then
    if out="$(kubectl create --dry-run=server -f "$work/pods-$name.json" 2>&1)"; then
      log "ok       pod templates of overlays/$name"
    else
      fail "overlays/$name: a SandboxTemplate's pod template is not a valid Pod: $out"
    fi
  fi
done

# --- 3. RBAC of each backend overlay, and the proxy running with it ------------------------------------
proxy_bin="${SANDCANARY_PROXY_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/sandcanary/target}/debug/sandcanary-proxy}"
[ -x "$proxy_bin" ] || { log "no proxy binary at $proxy_bin (cargo build -p sandcanary-proxy)"; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# run_proxy OVERLAY RESOURCE NAMESPACE: the proxy with the overlay's environment and ServiceAccount must get
# ready and create RESOURCE pw-manifest-probe in NAMESPACE when a session is ensured.
run_proxy() {
  local overlay="$1" resource="$2" ns="$3" d="$work/run-$1" admin pid i ready="" created=""
  mkdir -p "$d"
  python3 "$here/objects.py" proxy-env "$work/$overlay.json" "$d/root" >"$d/env"
  cat >"$d/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "$SANDCANARY_KUBE_SERVER", certificate-authority: "$SANDCANARY_KUBE_CA"}}]
users: [{name: sa, user: {tokenFile: "$d/sa-token"}}]
contexts: [{name: sa, context: {cluster: c, user: sa}}]
current-context: sa
KC
  kubectl create token sandcanary-proxy -n playwright >"$d/sa-token"
  chmod 600 "$d/sa-token"
  admin="127.0.0.1:$(free_port)"
  if [ "$resource" = local ]; then
    # The proxy-local image's paths (images.py checks them) mapped onto this checkout; the sandboxes'
    # directory stays short (Chromium's unix socket paths), like the overlay's /tmp/sandboxes.
    local_tmp="$(mktemp -d /tmp/scm.XXXXXX)"
    sed -i -e "s|^LOCAL_SANDBOX_SERVER=/app/server.js$|LOCAL_SANDBOX_SERVER=$root/deploy/sandbox/server.js|" \
      -e "s|^LOCAL_TMP_DIR=.*|LOCAL_TMP_DIR=$local_tmp|" "$d/env"
  fi
  mapfile -t envs <"$d/env"
  env -i PATH="$PATH" HOME="$HOME" "${envs[@]}" KUBECONFIG="$d/kubeconfig" \
    LISTEN_ADDR="127.0.0.1:$(free_port)" METRICS_ADDR="$admin" LOG_FORMAT=text "$proxy_bin" >"$d/log" 2>&1 &
  pid=$!
  for i in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    if [ "$(curl -s -m 1 "http://$admin/readyz" 2>/dev/null)" = ok ]; then ready=1; break; fi
    sleep 0.2
  done
  local token; token="$(cat "$d/root/var/run/sandcanary/session-api-token" 2>/dev/null || true)"
  if [ -n "$ready" ] && [ "$resource" = local ]; then
    # The local backend really starts the sandbox (Chromium, and @playwright/mcp with LOCAL_MCP).
    if curl -sf -m 90 -X PUT -H "Authorization: Bearer $token" "http://$admin/v1/sessions/manifest-probe" |
        grep -q '"state":"ready"'; then created=1
    else fail "overlays/$overlay: the local backend did not start a ready sandbox"; fi
    curl -s -m 30 -X DELETE -H "Authorization: Bearer $token" "http://$admin/v1/sessions/manifest-probe" >/dev/null || true
  elif [ -n "$ready" ]; then
    # PUT waits for the sandbox, which nothing here makes ready: only its creation is awaited.
    curl -s -m 3 -X PUT -H "Authorization: Bearer $token" "http://$admin/v1/sessions/manifest-probe" >/dev/null 2>&1 &
    for i in $(seq 1 50); do
      if kubectl get "$resource" pw-manifest-probe -n "$ns" -o jsonpath='{.metadata.labels.playwright-proxy/managed}' 2>/dev/null | grep -qx true; then
        created=1; break
      fi
      sleep 0.2
    done
    [ -n "$created" ] || fail "overlays/$overlay: the proxy did not create $resource pw-manifest-probe in $ns"
  else
    fail "overlays/$overlay: the proxy did not get ready with the overlay's environment and RBAC"
  fi
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ -z "$created" ]; then echo "--- proxy log (overlays/$overlay)" >&2; tail -n 30 "$d/log" >&2; fi
  [ "$resource" = local ] ||
    kubectl delete "$resource" pw-manifest-probe -n "$ns" --ignore-not-found --wait=false >/dev/null
}

# --- 3a. RBAC of each backend overlay, through the API server's own authorizer ---------------------------
sa=system:serviceaccount:playwright:sandcanary-proxy
can() { kubectl auth can-i "$@" --as "$sa" >/dev/null 2>&1; }
expect_yes() { can "$@" || fail "$overlay: the proxy may not: $*"; }
expect_no() { ! can "$@" || fail "$overlay: the proxy may, but should not: $*"; }
for pair in agent-sandbox:sandboxclaim openshell:sandboxclaim kars:karssandbox isola:isola substrate: local:; do
  overlay="${pair%%:*}" rbac="${pair#*:}" before=$failed
  kubectl get namespace isola-sandboxes >/dev/null 2>&1 || kubectl create namespace isola-sandboxes >/dev/null
  if ! out="$(kubectl apply --server-side --field-manager=test-manifests -k "$root/deploy/overlays/$overlay" 2>&1)"; then
    fail "overlays/$overlay cannot be applied: $out"; continue
  fi
  # Base: pod identity and leader election in the proxy's namespace.
  for v in get list watch; do expect_yes "$v" pods -n playwright; done
  for v in get create patch; do expect_yes "$v" leases.coordination.k8s.io -n playwright; done
  expect_no get secrets -n playwright
  expect_no delete pods -n playwright
  expect_no create pods -n playwright
  if [ -n "$rbac" ]; then
    # Everything the reference RBAC of this backend grants (rules as "namespace resource.group verb").
    kubectl create --dry-run=client -f "$root/deploy/rbac/$rbac.yaml" -o go-template-file="$here/rules.tmpl" |
      grep . >"$work/rules" || true
    [ -s "$work/rules" ] || fail "no rules read from deploy/rbac/$rbac.yaml"
    while read -r ns res verb; do
      if [ "$ns" = "-" ]; then expect_yes "$verb" "$res" -n kars-pw-someone; else expect_yes "$verb" "$res" -n "$ns"; fi
    done <"$work/rules"
  fi
  case "$rbac" in
    sandboxclaim) expect_yes patch sandboxclaims.extensions.agents.x-k8s.io -n playwright ;;
    karssandbox) expect_yes patch karssandboxes.kars.azure.com -n playwright ;;
    isola) expect_yes patch sandboxes.sandbox.isola.run -n isola-sandboxes
           expect_no create sandboxes.sandbox.isola.run -n playwright ;;
  esac
  [ "$rbac" = karssandbox ] || expect_no list pods -n kube-system
  ((failed > before)) || log "ok       RBAC of overlays/$overlay"
  before=$failed
  case "$rbac" in
    sandboxclaim) run_proxy "$overlay" sandboxclaims.extensions.agents.x-k8s.io playwright ;;
    karssandbox) run_proxy "$overlay" karssandboxes.kars.azure.com playwright ;;
    isola) run_proxy "$overlay" sandboxes.sandbox.isola.run isola-sandboxes ;;
  esac
  [ "$overlay" != local ] || run_proxy local local playwright
  [ -z "$rbac" ] && [ "$overlay" != local ] || ((failed > before)) || log "ok       overlays/$overlay: the proxy runs with its environment and RBAC"
  # Remove this overlay's grants before the next one is checked.
  for ns in playwright isola-sandboxes; do kubectl delete role,rolebinding --all -n "$ns" >/dev/null; done
  kubectl delete clusterrole,clusterrolebinding sandcanary-proxy-kars-pods --ignore-not-found >/dev/null
done

# --- 4. the dry run fails on what the server rejects ----------------------------------------------------
for f in "$here"/invalid/*.yaml; do
  if validate "$f" >"$work/invalid.log" 2>&1; then
    fail "$(basename "$f") was accepted; it must be rejected"; cat "$work/invalid.log" >&2
  elif ! grep -q REJECTED "$work/invalid.log"; then
    fail "$(basename "$f"): validate-manifests.sh failed without rejecting it:"; cat "$work/invalid.log" >&2
  else
    log "ok       $(basename "$f") rejected as it should be"
  fi
done

if ((failed)); then log "$failed check(s) failed"; exit 1; fi
log "all manifest checks passed"
