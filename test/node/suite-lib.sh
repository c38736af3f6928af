# Helpers for suite.sh (sourced).
SUITE_START=$SECONDS
STEP_START=$SECONDS
STEP=""
STEPS_DONE=0

step() {
  finish_step
  STEP="$1"
  STEP_START=$SECONDS
  echo "=== $STEP" >&2
}

finish_step() {
  if [ -n "$STEP" ]; then
    echo "--- ok ($((SECONDS - STEP_START))s): $STEP" >&2
    STEPS_DONE=$((STEPS_DONE + 1))
  fi
  STEP=""
}

fail() {
  echo "--- FAIL: ${STEP:-suite}: $*" >&2
  echo "cluster state at the failure:" >&2
  kubectl get pods -A -o wide >&2 || true
  kubectl get events -A --sort-by=.lastTimestamp 2>/dev/null | tail -n 25 >&2 || true
  exit 1
}

summary() {
  finish_step
  echo "PASS: $STEPS_DONE steps in $((SECONDS - SUITE_START))s" >&2
}

# Runs a pod to completion and prints its log; fails (status 1) when the pod fails.
run_pod() { # namespace name image -- cmd...
  local ns="$1" name="$2" image="$3"; shift 3
  [ "${1:-}" = "--" ] && shift
  local args
  args="$(printf '%s\n' "$@" | jq -R . | jq -cs .)"
  kubectl -n "$ns" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $name, namespace: $ns}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532}
  containers:
    - name: main
      image: $image
      imagePullPolicy: Never
      command: $args
YAML
  local phase="" deadline=$((SECONDS + ${RUN_POD_TIMEOUT:-120}))
  while ((SECONDS < deadline)); do
    phase="$(kubectl -n "$ns" get pod "$name" -o jsonpath='{.status.phase}')"
    case "$phase" in Succeeded|Failed) break ;; esac
    sleep 0.5
  done
  kubectl -n "$ns" logs "$name" 2>&1 || true
  kubectl -n "$ns" delete pod "$name" --wait=false >/dev/null 2>&1 || true
  [ "$phase" = Succeeded ]
}
