#!/usr/bin/env bash
# Validates Kubernetes manifests against the real API server with a server-side dry run: the server's own
# schema validation, defaulting and admission (incl. CRD schemas and CEL rules), nothing stored.
#
#   validate-manifests.sh PATH...
#
# PATH is a YAML file, a directory (all *.yaml/*.yml below it, recursively, except in node_modules and in
# hidden directories such as a tool's output) or a kustomization directory
# (contains kustomization.yaml: rendered with kubectl's built-in kustomize; a kustomize Component, which cannot
# be rendered alone, is skipped: validate a kustomization that includes it). Before validating, it installs
# the CRDs in deploy/crds and Argo Rollouts' CRDs (from the Go module cache) for real, and creates the
# namespaces the manifests name. With KUBECONFIG/SANDCANARY_KUBE_BIN from `apiserver.sh start` exported it
# uses that server; otherwise it starts a private one and stops it afterwards.
# Exits non-zero if any manifest is rejected, printing the server's reasons.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
log() { echo "validate-manifests.sh: $*" >&2; }

[ $# -gt 0 ] || { log "usage: validate-manifests.sh PATH..."; exit 2; }
if [ -z "${SANDCANARY_KUBE_DIR:-}" ] || [ -z "${SANDCANARY_KUBE_BIN:-}" ]; then
  exec "$here/apiserver.sh" run -- "$0" "$@"
fi
kubectl() { "$SANDCANARY_KUBE_BIN/kubectl" "$@"; }

# CRDs first, for real, so custom resources in the manifests can be validated.
argo_dir="$(cd "$here" && go list -m -f '{{.Dir}}' github.com/argoproj/argo-rollouts)"
crd_args=()
while IFS= read -r f; do crd_args+=(-f "$f"); done < <(ls "$root"/deploy/crds/*/*.yaml "$argo_dir"/manifests/crds/*-crd.yaml)
kubectl apply --server-side --force-conflicts "${crd_args[@]}" >/dev/null
tries=0
until kubectl wait --for condition=established --timeout=30s crd --all >/dev/null 2>&1; do
  tries=$((tries + 1)); ((tries < 60)) || { log "CRDs not established"; exit 1; }
  sleep 0.5
done

failures=0
is_component() { grep -q '^kind: *Component *$' "$1/kustomization.yaml"; }
validate() { # kind(-f|-k) path
  local flag="$1" path="$2" out namespaces ns
  # Namespaces named by the manifests must exist for a dry run of namespaced objects to succeed.
  if ! namespaces="$(kubectl create --dry-run=client "$flag" "$path" -o go-template \
      --template '{{if .items}}{{range .items}}{{.metadata.namespace}}{{"\n"}}{{if eq .kind "Namespace"}}{{.metadata.name}}{{"\n"}}{{end}}{{end}}{{else}}{{.metadata.namespace}}{{"\n"}}{{if eq .kind "Namespace"}}{{.metadata.name}}{{"\n"}}{{end}}{{end}}' 2>&1)"; then
    log "REJECTED $path (does not parse):"; echo "$namespaces" >&2
    failures=$((failures + 1)); return
  fi
  for ns in $(echo "$namespaces" | grep -v '^<no value>$' | sort -u); do
    kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns" >/dev/null
  done
  if out="$(kubectl apply --server-side --dry-run=server --field-manager=validate-manifests "$flag" "$path" 2>&1)"; then
    log "ok       $path"
  else
    log "REJECTED $path:"; echo "$out" >&2
    failures=$((failures + 1))
  fi
}

for path in "$@"; do
  if [ -d "$path" ] && [ -f "$path/kustomization.yaml" ]; then
    if is_component "$path"; then log "skipped  $path (a Component: validated through what includes it)"
    else validate -k "$path"; fi
  elif [ -d "$path" ]; then
    while IFS= read -r f; do
      # Files belonging to a kustomization are validated through it, not one by one.
      d="$(dirname "$f")"; skip=""
      while [ "$d" != "$(dirname "$path")" ] && [ "$d" != "/" ]; do
        [ -f "$d/kustomization.yaml" ] && { skip=1; break; }
        d="$(dirname "$d")"
      done
      [ -n "$skip" ] || validate -f "$f"
    done < <(find "$path" ! -path "$path" \( -name node_modules -o -name '.*' \) -prune -o -type f \( -name '*.yaml' -o -name '*.yml' \) ! -name 'kustomization.yaml' -print | sort)
    while IFS= read -r k; do
      if is_component "$(dirname "$k")"; then log "skipped  $(dirname "$k") (a Component: validated through what includes it)"
      else validate -k "$(dirname "$k")"; fi
    done < <(find "$path" ! -path "$path" \( -name node_modules -o -name '.*' \) -prune -o -name kustomization.yaml -print | sort)
  elif [ -f "$path" ]; then
    validate -f "$path"
  else
    log "no such file or directory: $path"; failures=$((failures + 1))
  fi
done
if ((failures)); then log "$failures manifest(s) rejected"; exit 1; fi
log "all manifests accepted"
