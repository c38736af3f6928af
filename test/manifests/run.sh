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
#   4. negative: every file in test/manifests/invalid/ must be rejected by validate-manifests.sh.
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

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- 1. server-side dry run of everything -------------------------------------------------------------
argo_dir="$(cd "$kube_dir" && go list -m -f '{{.Dir}}' github.com/argoproj/argo-rollouts)"
paths=("$root/deploy" "$root/deploy/argo-rollouts/file/argo-rollouts-config.yaml"
       "$root/deploy/argo-rollouts/https/argo-rollouts-config.yaml")
for d in analysis-templates rollouts; do
  if [ -d "$root/$d" ]; then paths+=("$root/$d"); else log "no $d/ directory yet: nothing to validate there"; fi
done
# The argo-rollouts Components, the way a user includes them: on Argo's install.yaml, in its namespace.
for variant in file https; do
  k="$work/argo-rollouts-$variant"
  mkdir -p "$k"
  cp "$argo_dir/manifests/install.yaml" "$k/install.yaml"
  chmod u+w "$k/install.yaml"
  cat >"$k/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: argo-rollouts
resources: [install.yaml]
components: [$(realpath --relative-to="$k" "$root/deploy/argo-rollouts/$variant")]
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

# --- 3. RBAC of each backend overlay, through the API server's own authorizer ---------------------------
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
  for v in get create update; do expect_yes "$v" leases.coordination.k8s.io -n playwright; done
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
