#!/usr/bin/env bash
# Runs the real Argo Rollouts controller (built from its Go module by build.sh) against an API server started
# by apiserver.sh, namespace-scoped.
#
#   rollouts-controller.sh start NAMESPACE [CONFIGMAP_YAML]
#       needs the env from `apiserver.sh start` (KUBECONFIG, SANDCANARY_KUBE_DIR). Installs Argo's CRDs from
#       the module cache if missing, creates NAMESPACE if missing, applies CONFIGMAP_YAML (an
#       argo-rollouts-config ConfigMap, e.g. registering a metric plugin) or an empty argo-rollouts-config,
#       starts the controller with its working dir in $SANDCANARY_KUBE_DIR/rollouts (plugins land in
#       ./plugin-bin there), waits for /healthz and prints SANDCANARY_ROLLOUTS_* variables.
#   rollouts-controller.sh stop
#       stops it (apiserver.sh stop also stops it: the pid file lives under $SANDCANARY_KUBE_DIR/pids).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { echo "rollouts-controller.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

: "${SANDCANARY_KUBE_DIR:?run apiserver.sh start first and export its env}"
: "${KUBECONFIG:?run apiserver.sh start first and export its env}"
pidfile="$SANDCANARY_KUBE_DIR/pids/rollouts-controller.pid"

# shellcheck source=lib.sh
source "$here/lib.sh"

# Waits for the controller's /healthz; fails if it exits, cannot bind its ports, or takes over 60 s.
wait_healthy() { # port logfile
  local deadline=$((SECONDS + 60))
  until curl -fsS --max-time 2 "http://127.0.0.1:$1/healthz" >/dev/null 2>&1; do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then tail -n 40 "$2" >&2; return 1; fi
    if grep -q 'address already in use' "$2"; then tail -n 5 "$2" >&2; return 1; fi
    ((SECONDS < deadline)) || { tail -n 40 "$2" >&2; return 1; }
    sleep 0.5
  done
}

start() {
  local ns="$1" cm="${2:-}"
  [ ! -f "$pidfile" ] || die "already running (pid $(cat "$pidfile"))"
  local bin kubectl
  bin="$("$here/build.sh" all)"
  kubectl="$bin/kubectl"

  local argo_dir
  argo_dir="$(cd "$here" && go list -m -f '{{.Dir}}' github.com/argoproj/argo-rollouts)"
  [ -d "$argo_dir/manifests/crds" ] || die "argo-rollouts module not in the module cache"
  local crd_args=() f
  for f in "$argo_dir"/manifests/crds/*-crd.yaml; do crd_args+=(-f "$f"); done
  "$kubectl" apply --server-side "${crd_args[@]}" >&2
  # kubectl wait errors out (instead of waiting) while a fresh CRD has no conditions yet, so retry it.
  local tries=0
  until "$kubectl" wait --for condition=established --timeout=30s \
      crd/rollouts.argoproj.io crd/analysisruns.argoproj.io crd/analysistemplates.argoproj.io \
      crd/clusteranalysistemplates.argoproj.io crd/experiments.argoproj.io >/dev/null 2>&1; do
    tries=$((tries + 1)); ((tries < 60)) || die "Argo Rollouts CRDs not established"
    sleep 0.5
  done

  "$kubectl" get namespace "$ns" >/dev/null 2>&1 || "$kubectl" create namespace "$ns" >&2
  if [ -n "$cm" ]; then
    "$kubectl" apply --server-side -n "$ns" -f "$cm" >&2
  elif ! "$kubectl" get configmap -n "$ns" argo-rollouts-config >/dev/null 2>&1; then
    "$kubectl" create configmap -n "$ns" argo-rollouts-config >&2
  fi

  local work="$SANDCANARY_KUBE_DIR/rollouts" logfile="$SANDCANARY_KUBE_DIR/logs/rollouts-controller.log"
  mkdir -p "$work"
  local attempt metrics healthz
  for attempt in 1 2 3; do
    metrics="$(free_port)"; healthz="$(free_port)"
    # POD_NAMESPACE is how the controller finds its own namespace (and argo-rollouts-config) out of cluster.
    (cd "$work" && POD_NAMESPACE="$ns" exec "$bin/rollouts-controller" \
        --kubeconfig "$KUBECONFIG" --namespaced --namespace "$ns" \
        --leader-elect=false --metricsPort "$metrics" --healthzPort "$healthz" \
        --loglevel "${ROLLOUTS_LOGLEVEL:-info}" \
        >"$logfile" 2>&1 </dev/null) &
    echo $! >"$pidfile"
    if wait_healthy "$healthz" "$logfile"; then break; fi
    stop
    mv "$logfile" "$logfile.failed-$attempt"
    ((attempt < 3)) || die "controller did not start (logs: $logfile.failed-*)"
    log "start attempt $attempt failed; retrying on new ports"
  done
  log "running in namespace $ns (log: $SANDCANARY_KUBE_DIR/logs/rollouts-controller.log)"
  printf 'export SANDCANARY_ROLLOUTS_NAMESPACE=%q\n' "$ns"
  printf 'export SANDCANARY_ROLLOUTS_LOG=%q\n' "$SANDCANARY_KUBE_DIR/logs/rollouts-controller.log"
  printf 'export SANDCANARY_ROLLOUTS_WORKDIR=%q\n' "$work"
  printf 'export SANDCANARY_ROLLOUTS_METRICS=%q\n' "http://127.0.0.1:$metrics/metrics"
}

stop() {
  [ -f "$pidfile" ] || { log "not running"; return 0; }
  local pid; pid="$(cat "$pidfile")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  log "stopped"
}

case "${1:-}" in
  start) [ -n "${2:-}" ] || die "usage: rollouts-controller.sh start NAMESPACE [CONFIGMAP_YAML]"; start "$2" "${3:-}" ;;
  stop) stop ;;
  *) die "usage: rollouts-controller.sh start NAMESPACE [CONFIGMAP_YAML] | stop" ;;
esac
