#!/usr/bin/env bash
# Argo Rollouts v1.9.1 on the one-node cluster, installed with the commands of README "Register the plugin"
# (read from README.md, run as written), its controller a pod of the image test/node/images.sh builds
# (quay.io/argoproj/argo-rollouts:v1.9.1: the controller from the argo-rollouts Go module on the Debian
# runtime base), sandcanary-plugin registered from deploy/argo-rollouts/.
#
#   argo.sh install DIR [file|https]   install into the running cluster DIR (`cluster.sh up DIR`); prints
#                                      nothing on stdout; leaves the controller Ready with the plugin loaded.
#                                      `file` (default): the plugin image's init container copies the binary.
#                                      `https`: also starts the release server below and downloads from it.
#   argo.sh install-here [file|https]  the same from inside the cluster's namespace (KUBECONFIG etc. exported,
#                                      e.g. in a suite run by `cluster.sh run --`)
#   argo.sh test                       the suite, inside the cluster (`cluster.sh run -- test/node/argo.sh test`):
#                                      file variant, a trivial AnalysisRun through the plugin, the https
#                                      variant from a release server pod (TLS, the test's CA), a wrong sha256
#
# Environment: GITHUB_TOKEN (the token in Secret sandcanary-plugin-tokens; default a fake one),
# ARGO_EXTRA_PATCH (a strategic-merge patch file added to the test's kustomization, e.g. to set
# SANDCANARY_GITHUB_API_URL on the controller container, as an operator edits their kustomization).
#
# What the test changes against README, all in the test's wrapper kustomization or its substitutions:
# - the release URL of install.yaml becomes the same file from the argo-rollouts v1.9.1 Go module, with the
#   image tag set to v1.9.1 as Argo's release does (hack/update-manifests.sh, IMAGE_TAG);
# - `<path to sandcanary>` becomes this checkout; for https the `…/file` line says `…/https` and the
#   https-ca line is uncommented;
# - imagePullPolicy Always -> IfNotPresent (install.yaml says Always; there is no registry here, the image
#   is imported into containerd);
# - for https: the ConfigMap's location and sha256 (the user's edit of deploy/argo-rollouts/https).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

ARGO_NS=argo-rollouts
RELEASES_NS=sandcanary-releases
RELEASE_HOST=releases.$RELEASES_NS.svc.cluster.local
RELEASE_PATH=sandcanary/sandcanary/releases/download/v0.1.0/sandcanary-plugin-linux-amd64
RELEASE_URL=https://$RELEASE_HOST/$RELEASE_PATH
PLUGIN_IMAGE=ghcr.io/sandcanary/sandcanary-plugin:0.1.0
RELEASES_IMAGE=sandcanary.local/releases:1

log() { echo "argo.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# --- README blocks ---------------------------------------------------------------------------------------
# The fenced block of README section "## Register the plugin" whose text matches REGEX (awk), as written.
readme_block() { # lang regex
  awk -v lang="$1" -v re="$2" '
    /^## / {in_sec = ($0 == "## Register the plugin")}
    in_sec && !in_blk && $0 == "```" lang {in_blk = 1; blk = ""; next}
    in_blk && /^```/ {in_blk = 0; if (blk ~ re) {printf "%s", blk; found = 1; exit}; next}
    in_blk {blk = blk $0 "\n"}
    END {exit !found}' "$root/README.md"
}

# --- images ----------------------------------------------------------------------------------------------
import_images() {
  local ref archive
  while IFS=$'\t' read -r ref archive; do
    case "$ref" in quay.io/argoproj/argo-rollouts:*|"$PLUGIN_IMAGE") ;; *) continue ;; esac
    [ -f "$archive" ] || die "no archive for $ref at $archive (make images / test/node/images.sh build argo-rollouts plugin)"
    ctr --address "$SANDCANARY_NODE_DIR/containerd/containerd.sock" -n k8s.io images import "$archive" >/dev/null ||
      die "could not import $archive"
  done < <("$here/images.sh" list)
}

# --- the kustomization a user writes, made runnable here -------------------------------------------------
# Writes WORK/readme/ (README's kustomization.yaml with the substitutions above, and install.yaml) and
# WORK/test/ (it, plus the pull policy and the variant's patches); prints WORK/test.
kustomization() { # work variant [sha256]
  local work="$1" variant="$2" sha="${3:-}" argo_dir version
  mkdir -p "$work/readme" "$work/test"
  argo_dir="$(cd "$root/test/kube" && GOFLAGS=-mod=mod GOPROXY=off go list -m -f '{{.Dir}}' github.com/argoproj/argo-rollouts)" ||
    die "argo-rollouts module not in Go's module cache (test/kube/build.sh downloads it)"
  version="$(awk '$1=="github.com/argoproj/argo-rollouts" {print $2; exit}' "$root/test/kube/go.mod")"
  sed "s#quay.io/argoproj/argo-rollouts:latest#quay.io/argoproj/argo-rollouts:$version#" \
    "$argo_dir/manifests/install.yaml" >"$work/readme/install.yaml"
  grep -q "image: quay.io/argoproj/argo-rollouts:$version" "$work/readme/install.yaml" || die "install.yaml names no controller image"
  local yaml
  yaml="$(readme_block yaml 'your kustomization.yaml')" || die "README 'Register the plugin' has no kustomization.yaml block"
  yaml="$(sed -e "s#https://github.com/argoproj/argo-rollouts/releases/download/$version/install.yaml#install.yaml#" \
    -e "s#<path to sandcanary>#$(realpath --relative-to="$work/readme" "$root")#" <<<"$yaml")"
  grep -q '^  - install.yaml$' <<<"$yaml" || die "README's kustomization does not install Argo Rollouts $version"
  case "$variant" in
    https)
      yaml="$(sed -e "s#\(deploy/argo-rollouts/\)file\b#\1https#" -e 's#^  \# \(- .*deploy/argo-rollouts/https-ca\)#  \1#' <<<"$yaml")"
      grep -q '^  - .*deploy/argo-rollouts/https-ca' <<<"$yaml" || die "README's kustomization has no https-ca line" ;;
    https-noca) # https/ without https-ca/: the controller has only the public roots
      yaml="$(sed -e "s#\(deploy/argo-rollouts/\)file\b#\1https#" <<<"$yaml")" ;;
  esac
  printf '%s\n' "$yaml" >"$work/readme/kustomization.yaml"
  {
    echo "resources: [../readme]"
    echo "patches:"
    echo "  - target: {kind: Deployment, name: argo-rollouts}"
    echo "    patch: '[{\"op\": \"replace\", \"path\": \"/spec/template/spec/containers/0/imagePullPolicy\", \"value\": \"IfNotPresent\"}]'"
    if [ "$variant" != file ]; then
      cat <<YAML
  - patch: |-
      apiVersion: v1
      kind: ConfigMap
      metadata: {name: argo-rollouts-config, namespace: $ARGO_NS}
      data:
        metricProviderPlugins: |-
          - name: "sandcanary/sandcanary"
            location: "$RELEASE_URL"
            sha256: "$sha"
YAML
    fi
    if [ -n "${ARGO_EXTRA_PATCH:-}" ]; then
      cp "$ARGO_EXTRA_PATCH" "$work/test/extra-patch.yaml"
      echo "  - path: extra-patch.yaml"
    fi
  } >"$work/test/kustomization.yaml"
  echo "$work/test"
}

# --- the release server: the plugin binary and its sha256 over HTTPS, from a pod --------------------------
# The test's CA (WORK/ca.crt) signs the server's certificate; the binary is the plugin image's, copied by an
# init container (as a release pipeline would publish it), its sha256 written beside it; cmd/releases serves them.
release_server() { # work
  local work="$1"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=sandcanary test CA" \
    -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$RELEASE_HOST" \
    -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s,DNS:releases.%s.svc\nextendedKeyUsage=serverAuth\n' "$RELEASE_HOST" "$RELEASES_NS" \
    >"$work/tls.ext"
  openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
    -extfile "$work/tls.ext" -out "$work/tls.crt" 2>/dev/null
  # Its own small image (cmd/releases, static, packed by binimage.sh), built into this cluster's dir.
  mkdir -p "$work/bin"
  (cd "$here" && CGO_ENABLED=0 GOFLAGS=-mod=mod GOPROXY=off go build -ldflags "-s -w" -o "$work/bin/releases" ./cmd/releases) ||
    die "could not build cmd/releases"
  "$here/binimage.sh" "$RELEASES_IMAGE" "$work/releases.tar" /usr/local/bin/releases "$work/bin/releases"
  ctr --address "$SANDCANARY_NODE_DIR/containerd/containerd.sock" -n k8s.io images import "$work/releases.tar" >/dev/null ||
    die "could not import the releases image"
  kubectl get namespace "$RELEASES_NS" >/dev/null 2>&1 || kubectl create namespace "$RELEASES_NS" >&2
  kubectl -n "$RELEASES_NS" create secret tls releases-tls --cert "$work/tls.crt" --key "$work/tls.key" \
    --dry-run=client -o yaml | kubectl apply -f - >&2
  kubectl -n "$RELEASES_NS" delete pod releases --ignore-not-found >&2
  local dir="/srv/${RELEASE_PATH%/*}" asset="${RELEASE_PATH##*/}"
  kubectl apply -f - >&2 <<YAML
apiVersion: v1
kind: Pod
metadata: {name: releases, namespace: $RELEASES_NS, labels: {app: releases}}
spec:
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  initContainers:
    - name: publish
      image: $PLUGIN_IMAGE
      imagePullPolicy: IfNotPresent
      command: ["/bin/sh", "-ec", "mkdir -p $dir && cp /plugin/sandcanary-plugin $dir/$asset && cd $dir && sha256sum $asset > $asset.sha256"]
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      volumeMounts: [{name: srv, mountPath: /srv}]
  containers:
    - name: releases
      image: $RELEASES_IMAGE
      imagePullPolicy: Never
      args: [/srv, /tls/tls.crt, /tls/tls.key]
      ports: [{containerPort: 8443}]
      readinessProbe: {tcpSocket: {port: 8443}, periodSeconds: 1}
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      volumeMounts: [{name: srv, mountPath: /srv, readOnly: true}, {name: tls, mountPath: /tls, readOnly: true}]
  volumes:
    - {name: srv, emptyDir: {}}
    - {name: tls, secret: {secretName: releases-tls}}
---
apiVersion: v1
kind: Service
metadata: {name: releases, namespace: $RELEASES_NS}
spec:
  selector: {app: releases}
  ports: [{port: 443, targetPort: 8443}]
YAML
  kubectl -n "$RELEASES_NS" wait --for condition=Ready --timeout 90s pod/releases >&2 ||
    { kubectl -n "$RELEASES_NS" describe pod releases >&2; die "release server not Ready"; }
}

# The published checksum, read as a user reads it: from the server, over TLS checked against the CA.
published_sha256() { # work
  local ip
  ip="$(kubectl -n "$RELEASES_NS" get service releases -o jsonpath='{.spec.clusterIP}')"
  # A new Service may not be programmed by kube-proxy yet: retry for a while.
  curl -fsS --max-time 10 --retry 30 --retry-delay 1 --retry-all-errors --cacert "$1/ca.crt" --resolve "$RELEASE_HOST:443:$ip" "$RELEASE_URL.sha256" | cut -d' ' -f1
}

# --- install ---------------------------------------------------------------------------------------------
controller_pod() { # the newest controller pod that is not being deleted
  kubectl -n "$ARGO_NS" get pods -l app.kubernetes.io/name=argo-rollouts -o json |
    jq -r '[.items[] | select(.metadata.deletionTimestamp == null)] | sort_by(.metadata.creationTimestamp) | last | .metadata.name // empty'
}

install_here() { # variant
  local variant="${1:-file}" work sha=""
  : "${SANDCANARY_NODE_DIR:?run inside the cluster (cluster.sh exec DIR -- or cluster.sh run --)}"
  work="$SANDCANARY_NODE_DIR/argo-$variant"
  rm -rf "$work"; mkdir -p "$work"
  import_images
  # README's RBAC files name the proxies' namespace, which "Install in a cluster" creates first.
  kubectl get namespace playwright >/dev/null 2>&1 || kubectl create namespace playwright >&2
  local ca=""
  if [ "$variant" = https ]; then
    release_server "$work"
    sha="$(published_sha256 "$work")"
    [[ "$sha" =~ ^[0-9a-f]{64}$ ]] || die "the release server published no sha256 ('$sha')"
    ca="$work/ca.crt"
  fi
  local k block
  k="$(kustomization "$work" "$variant" "$sha")"
  block="$(readme_block sh 'kubectl apply --server-side -k "\$ARGO_KUSTOMIZATION"')" ||
    die "README 'Register the plugin' has no install block applying \$ARGO_KUSTOMIZATION"
  log "README 'Register the plugin', $variant variant (ARGO_KUSTOMIZATION=$k):"
  echo "$block" >&2
  (cd "$root" && ARGO_KUSTOMIZATION="$k" PLUGIN_DOWNLOAD_CA="$ca" \
    GITHUB_TOKEN="${GITHUB_TOKEN:-ghp_sandcanaryNodeTestToken000000000000}" bash -euo pipefail -c "$block" >&2) || {
    kubectl -n "$ARGO_NS" describe pods >&2 || true
    kubectl -n "$ARGO_NS" logs "deploy/argo-rollouts" --all-containers >&2 || true
    die "the README's install commands failed ($variant)"
  }
  wait_plugin_loaded "$variant"
}

# The controller's log says it placed the plugin (file: copied from the init container's volume; https:
# downloaded, checked) and that it started its controllers.
wait_plugin_loaded() { # variant
  local pod="" want deadline=$((SECONDS + 120)) logs=""
  case "$1" in
    file) want="Copied plugin from /home/argo-rollouts/plugins/sandcanary-plugin to " ;;
    https) want="Download complete" ;;
  esac
  # The pod is looked up each time: a replaced one may still be terminating when this starts.
  until pod="$(controller_pod)" && logs="$(kubectl -n "$ARGO_NS" logs "$pod" 2>/dev/null)" && grep -qF "$want" <<<"$logs"; do
    ((SECONDS < deadline)) || { echo "$logs" | tail -n 30 >&2; die "$pod: no '$want' in the controller's log"; }
    sleep 1
  done
  grep -E 'plugin|Plugin' <<<"$logs" >&2 || true
}

# Waits until a controller pod other than OLD logs TEXT (in its current or previous container).
wait_controller_log() { # text timeout old
  local text="$1" deadline=$((SECONDS + $2)) old="$3" pod logs
  while ((SECONDS < deadline)); do
    pod="$(controller_pod)"
    if [ "$pod" != "$old" ]; then
      logs="$(kubectl -n "$ARGO_NS" logs "$pod" 2>/dev/null; kubectl -n "$ARGO_NS" logs "$pod" --previous 2>/dev/null)" || true
      if grep -F "$text" <<<"$logs" >&2; then return 0; fi
    fi
    sleep 1
  done
  kubectl -n "$ARGO_NS" get pods >&2
  return 1
}

# --- the suite -------------------------------------------------------------------------------------------
# Runs an AnalysisRun NAME with one metric for sandcanary/sandcanary whose configuration is CONFIG (YAML,
# indented for the plugin key) and waits for its phase; sets `phase` and `msg` (the last measurement's message).
plugin_analysis() { # name config
  local name="$1" config="$2" deadline=$((SECONDS + 120))
  phase="" msg=""
  kubectl apply -f - >&2 <<YAML
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata: {name: $name, namespace: playwright}
spec:
  metrics:
    - name: sandcanary
      count: 1
      consecutiveErrorLimit: 0
      provider:
        plugin:
          sandcanary/sandcanary:
$config
YAML
  while ((SECONDS < deadline)); do
    phase="$(kubectl -n playwright get analysisrun "$name" -o jsonpath='{.status.phase}')"
    case "$phase" in Successful|Failed|Error|Inconclusive) break ;; esac
    sleep 1
  done
  msg="$(kubectl -n playwright get analysisrun "$name" -o jsonpath='{.status.metricResults[0].measurements[-1].message}')"
  echo "AnalysisRun $name: phase $phase, measurement: $msg" >&2
}

# A key the plugin does not know: only the plugin answers "invalid sandcanary plugin configuration", so the
# phase and message come from it.
analysis_through_plugin() { # name
  local phase msg
  plugin_analysis "$1" '            notASandcanaryKey: true'
  [ "$phase" = Error ] || fail "AnalysisRun $1 ended '$phase', want Error from the plugin"
  [[ "$msg" == *"invalid sandcanary plugin configuration"*"notASandcanaryKey"* ]] ||
    fail "AnalysisRun $1: the measurement did not come from sandcanary-plugin: $msg"
}

# Tokens that name a Secret that does not exist: the plugin, inside the controller pod, asks the API server
# for it (in-cluster config, Argo's ServiceAccount) and reports the 404 by name.
analysis_reads_kube() { # name
  local phase msg
  plugin_analysis "$1" '            stable: {dataUrl: "ws://stable.playwright:9000/", adminUrl: "http://stable.playwright:9090"}
            canary: {dataUrl: "ws://canary.playwright:9000/", adminUrl: "http://canary.playwright:9090"}
            sessionApiToken: {secretKeyRef: {name: sandcanary-no-such-secret, key: session-api-token}}
            identityToken: {secretKeyRef: {name: sandcanary-no-such-secret, key: identity-token}}
            pageUrl: "http://hello.default.svc.cluster.local/"
            pollSeconds: 1'
  [ "$phase" = Error ] && [[ "$msg" == *"Secret sandcanary-no-such-secret does not exist in namespace playwright"* ]] ||
    fail "AnalysisRun $1: the plugin did not read the API server from the controller pod: $phase $msg"
}

suite() {
  # shellcheck source=suite-lib.sh
  source "$here/suite-lib.sh"
  local t0=$SECONDS

  step "file/: Argo Rollouts $(awk '$1=="github.com/argoproj/argo-rollouts" {print $2}' "$root/test/kube/go.mod") installed by README 'Register the plugin', the plugin copied by the init container"
  install_here file
  local pod
  pod="$(controller_pod)"
  [ "$(kubectl -n "$ARGO_NS" get pod "$pod" -o jsonpath='{.status.initContainerStatuses[0].state.terminated.exitCode}')" = 0 ] ||
    fail "the sandcanary-plugin init container did not exit 0"
  [ "$(kubectl -n "$ARGO_NS" get pod "$pod" -o jsonpath='{.spec.containers[0].image}')" = quay.io/argoproj/argo-rollouts:v1.9.1 ] ||
    fail "the controller does not run install.yaml's image"
  [ "$(kubectl -n playwright get role sandcanary-plugin-pod-logs -o name)" = role.rbac.authorization.k8s.io/sandcanary-plugin-pod-logs ] ||
    fail "pod-logs RBAC not applied"
  kubectl -n "$ARGO_NS" get secret sandcanary-plugin-tokens >/dev/null || fail "plugin tokens Secret missing"

  step "file/: an AnalysisRun reaches its phase through sandcanary-plugin in the controller pod"
  analysis_through_plugin plugin-loaded-file

  step "file/: the plugin reads the API server from the controller pod (in-cluster config, Argo's ServiceAccount)"
  analysis_reads_kube plugin-reads-kube

  step "https/: the controller downloads the plugin from a release server pod (TLS, the test's CA via https-ca/), checks its sha256, runs it"
  # A fresh install of the other variant, as a user who picked https/ would run it.
  kubectl delete namespace "$ARGO_NS" --timeout 120s >&2 || fail "argo-rollouts namespace not deleted"
  install_here https
  pod="$(controller_pod)"
  local logs srv pod_ip
  logs="$(kubectl -n "$ARGO_NS" logs "$pod")"
  grep -qF "Downloading plugin sandcanary/sandcanary from: $RELEASE_URL" <<<"$logs" || fail "no download from $RELEASE_URL in the log"
  grep -q 'expected sha256' <<<"$logs" && fail "the checksum did not match: $(grep 'expected sha256' <<<"$logs")"
  pod_ip="$(kubectl -n "$ARGO_NS" get pod "$pod" -o jsonpath='{.status.podIP}')"
  srv="$(kubectl -n "$RELEASES_NS" logs releases)"
  grep -qF "request from $pod_ip:" <<<"$srv" || { echo "$srv" >&2; fail "the release server saw no request from the controller ($pod_ip)"; }
  analysis_through_plugin plugin-loaded-https

  step "https/: a wrong sha256 stops the controller at start"
  # Argo's install.yaml gives the controller no readiness probe: the new pod counts as available as soon as
  # its container starts, so the Deployment removes the old, working controller before the new one has
  # checked the download. A wrong sha256 therefore leaves no controller running (measured below).
  local old wrong new deadline
  old="$pod"
  wrong="$(printf 'not the release' | sha256sum | cut -d' ' -f1)"
  kubectl -n "$ARGO_NS" get configmap argo-rollouts-config -o json |
    jq --arg s "$wrong" '.data.metricProviderPlugins |= sub("sha256: \"[0-9a-f]{64}\""; "sha256: \"" + $s + "\"")' |
    kubectl replace -f - >&2
  kubectl -n "$ARGO_NS" rollout restart deploy/argo-rollouts >&2
  deadline=$((SECONDS + 120)) logs=""
  while :; do
    new="$(controller_pod)"
    if [ "$new" != "$old" ]; then
      logs="$(kubectl -n "$ARGO_NS" logs "$new" --previous 2>/dev/null || kubectl -n "$ARGO_NS" logs "$new" 2>/dev/null || true)"
      grep -q 'does not match expected hash' <<<"$logs" &&
        [ "$(kubectl -n "$ARGO_NS" get pod "$new" -o jsonpath='{.status.containerStatuses[0].restartCount}')" -ge 1 ] && break
    fi
    ((SECONDS < deadline)) || { echo "$logs" >&2; kubectl -n "$ARGO_NS" get pods >&2; fail "the controller with a wrong sha256 did not stop on the checksum"; }
    sleep 1
  done
  grep -E 'expected sha256|Failed to download plugins' <<<"$logs" >&2
  grep -qF "expected sha256: $wrong" <<<"$logs" || fail "the log does not name the expected checksum"
  [ "$(kubectl -n "$ARGO_NS" get pod "$new" -o jsonpath='{.status.containerStatuses[0].lastState.terminated.exitCode}')" = 1 ] ||
    fail "$new did not exit 1 on the wrong checksum"
  if kubectl -n "$ARGO_NS" get pod "$old" >/dev/null 2>&1; then
    echo "finding: the previous controller $old is still there" >&2
  else
    echo "finding: the previous controller $old was removed; no controller runs until the sha256 is fixed" >&2
  fi

  step "https/ without https-ca/: the controller does not trust the test's CA; with it again it recovers"
  # The same install without the https-ca Component (and the right sha256): only the CA ConfigMap that
  # https-ca mounts makes the release server trusted.
  local k
  k="$(kustomization "$SANDCANARY_NODE_DIR/argo-https-noca" https-noca "$(published_sha256 "$SANDCANARY_NODE_DIR/argo-https")")"
  old="$(controller_pod)"
  # --force-conflicts: the wrong sha256 above was a `kubectl replace` (another field manager).
  kubectl apply --server-side --force-conflicts -k "$k" >/dev/null
  wait_controller_log 'x509: certificate signed by unknown authority' 120 "$old" ||
    fail "without https-ca the controller did not refuse the release server's certificate"
  k="$(kustomization "$SANDCANARY_NODE_DIR/argo-https" https "$(published_sha256 "$SANDCANARY_NODE_DIR/argo-https")")"
  kubectl apply --server-side -k "$k" >/dev/null
  kubectl -n "$ARGO_NS" rollout status deploy/argo-rollouts --timeout 120s >&2 || fail "the controller did not come back"
  wait_plugin_loaded https

  summary
  log "suite done in $((SECONDS - t0))s"
}

cmd="${1:-}"; shift || true
case "$cmd" in
  install)
    d="${1:-}"; [ -n "$d" ] && [ -f "$d/env" ] || die "usage: argo.sh install DIR [file|https] (DIR from cluster.sh up)"
    exec "$here/cluster.sh" exec "$d" -- "$0" install-here "${2:-file}"
    ;;
  install-here) install_here "${1:-file}" ;;
  test) suite ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
