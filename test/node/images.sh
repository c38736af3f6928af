#!/usr/bin/env bash
# Builds sandcanary's container images from the repository's own Dockerfiles without any container
# registry: the base images are made here from Debian's packages (mmdebstrap) and the host's Node, the
# Rust binaries are built on the host (cargo) and copied in by the Dockerfile's *-prebuilt targets.
# Each image is written as a docker-archive (`ctr -n k8s.io images import`, `podman load`) tagged with
# the exact name the manifests in deploy/ use.
#
# Usage:
#   test/node/images.sh build [NAME...]   build (only what changed) and write the archives; default: all
#   test/node/images.sh list              print `<image reference>\t<archive>` per image
#   test/node/images.sh podman ARGS...    run podman with this script's storage and configuration
#   test/node/images.sh clean             remove the archives, the bases and podman's storage (the next
#                                         build starts cold and takes Debian's current packages)
#
# Environment:
#   SANDCANARY_IMAGES_DIR    where the archives go (default ~/.cache/sandcanary/images)
#   SANDCANARY_PODMAN_DIR    podman storage, base root file systems, .deb cache (default ~/.cache/sandcanary/podman)
#   SANDCANARY_DEBIAN_MIRROR Debian mirror for the bases (default http://deb.debian.org)
#   CARGO_TARGET_DIR         the shared cargo target dir (default ~/.cache/sandcanary/target)
#
# Caching: an image is rebuilt only when the hash of its inputs (Dockerfile, target, build arguments, base
# image id, every context file) differs from the one recorded next to its archive; a base only when its
# recipe (package list, hooks, the host's Node) changes. Podman's layer cache makes a rebuild incremental.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IMAGES_DIR=${SANDCANARY_IMAGES_DIR:-$HOME/.cache/sandcanary/images}
WORK=${SANDCANARY_PODMAN_DIR:-$HOME/.cache/sandcanary/podman}
MIRROR=${SANDCANARY_DEBIAN_MIRROR:-http://deb.debian.org}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sandcanary/target}
SUITE=bookworm
TAG=0.1.0
REPO=ghcr.io/sandcanary
# The Argo Rollouts release the tests install: the one test/kube/go.mod builds.
ARGO_ROLLOUTS_VERSION=$(awk '$1=="github.com/argoproj/argo-rollouts" {print $2; exit}' "$ROOT/test/kube/go.mod")

# name  reference  dockerfile  target  context-kind  base
IMAGES=(
  "proxy       $REPO/sandcanary-proxy:$TAG       deploy/images/Dockerfile  proxy-prebuilt        programs runtime"
  "plugin      $REPO/sandcanary-plugin:$TAG      deploy/images/Dockerfile  plugin-prebuilt       programs runtime"
  "proxy-local $REPO/sandcanary-proxy-local:$TAG deploy/images/Dockerfile  proxy-local-prebuilt  programs chromium"
  "sandbox     $REPO/sandcanary-sandbox:$TAG     deploy/sandbox/Dockerfile  sandbox-prebuilt      sandbox  chromium"
  "agent       $REPO/sandcanary-agent:$TAG       test/node/agent/Dockerfile agent-prebuilt       agent    node"
  # Argo Rollouts' controller (the tests' install of Argo, test/node/argo.sh), under the reference its
  # release install.yaml names: the controller built from its Go module by test/kube/build.sh.
  "argo-rollouts quay.io/argoproj/argo-rollouts:$ARGO_ROLLOUTS_VERSION test/node/argo/Dockerfile argo-rollouts-prebuilt argo runtime"
)

log() { printf 'images: %s\n' "$*" >&2; }
die() { printf 'images: error: %s\n' "$*" >&2; exit 1; }

# --- podman with our own storage and configuration (nothing under /etc is changed) --------------------
podman_env() {
  local conf=$WORK/conf
  mkdir -p "$conf" "$WORK/storage"
  # default_ulimits = []: setting RLIMIT_NOFILE needs CAP_SYS_RESOURCE, which this kind of VM withholds.
  # runc, not crun (crun refuses the hybrid cgroup v1 layout); cgroupfs: no systemd session needed.
  cat >"$conf/containers.conf.new" <<EOF
[containers]
default_ulimits = []
log_driver = "k8s-file"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_config_dir = "$WORK/net.d"
EOF
  cat >"$conf/storage.conf.new" <<EOF
[storage]
driver = "overlay"
graphroot = "$WORK/storage"
runroot = "/run/sandcanary-podman/$(printf %s "$WORK" | sha256sum | cut -c1-12)"
EOF
  # No search registries: a short name never turns into a pull.
  printf 'unqualified-search-registries = []\n' >"$conf/registries.conf.new"
  for f in containers.conf storage.conf registries.conf; do
    cmp -s "$conf/$f.new" "$conf/$f" && rm "$conf/$f.new" || mv "$conf/$f.new" "$conf/$f"
  done
  export CONTAINERS_CONF=$conf/containers.conf CONTAINERS_STORAGE_CONF=$conf/storage.conf \
    CONTAINERS_REGISTRIES_CONF=$conf/registries.conf
}

pm() { podman "$@"; }

sha() { sha256sum | cut -c1-64; }

# --- base images ----------------------------------------------------------------------------------------
sources() {
  printf 'deb %s/debian %s main\n' "$MIRROR" "$SUITE"
  printf 'deb %s/debian %s-updates main\n' "$MIRROR" "$SUITE"
  printf 'deb %s/debian-security %s-security main\n' "$MIRROR" "$SUITE"
}

host_node() {
  local node npm_dir major
  node=$(readlink -f "$(command -v node)") || die "node is not installed (make setup-node)"
  major=$("$node" -p 'process.versions.node.split(".")[0]')
  ((major >= 20)) || die "the host's Node is $("$node" --version); the images need Node >= 20 (playwright-core)"
  npm_dir=$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd) || die "npm is not installed"
  [[ -f $npm_dir/package.json ]] || die "npm's package directory not found ($npm_dir)"
  printf '%s\n%s\n' "$node" "$npm_dir"
}

HOOK=$ROOT/test/node/base-hook.sh

RUNTIME_PKGS=libc6,libgcc-s1,libstdc++6,ca-certificates,busybox
CHROMIUM_PKGS=chromium,fonts-liberation,fonts-noto-color-emoji,ca-certificates,libstdc++6
BASE_ENV=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["/bin/sh"]')

# ensure_base NAME: sets BASE_REF to localhost/sandcanary-base-NAME:<recipe hash>, building it if needed.
declare -A BASE_DONE=()
ensure_base() {
  local name=$1 node npm_dir key ref tar hn
  if [[ -n ${BASE_DONE[$name]:-} ]]; then BASE_REF=${BASE_DONE[$name]}; return; fi
  hn=$(host_node) || exit 1
  node=${hn%%$'\n'*}; npm_dir=${hn#*$'\n'}
  case $name in
    runtime) key=$({ echo v1; sources; echo "$RUNTIME_PKGS"; cat "$HOOK"; } | sha) ;;
    chromium) key=$({ echo v1; sources; echo "$CHROMIUM_PKGS"; cat "$HOOK"
                      sha256sum "$node"; cat "$npm_dir/package.json"; } | sha) ;;
    node) ensure_base runtime
          key=$({ echo v1 "$BASE_REF"; sha256sum "$node"; cat "$npm_dir/package.json"; } | sha) ;;
    *) die "unknown base $name" ;;
  esac
  ref=localhost/sandcanary-base-$name:${key:0:16}
  BASE_DONE[$name]=$ref
  if pm image exists "$ref"; then BASE_REF=$ref; return; fi
  tar=$WORK/bases/$name-${key:0:16}.tar
  mkdir -p "$WORK/bases" "$WORK/debs"
  if [[ ! -s $tar ]]; then
    local t0=$SECONDS
    case $name in
      runtime)
        log "base $name: mmdebstrap ($RUNTIME_PKGS)"
        mmdebstrap --quiet --mode=root --format=tar --variant=extract --include="$RUNTIME_PKGS" \
          --extract-hook="bash $HOOK runtime \"\$1\"" \
          "$SUITE" "$tar.tmp" "$(sources)" || die "mmdebstrap failed for base $name"
        ;;
      chromium)
        log "base $name: mmdebstrap ($CHROMIUM_PKGS) + host Node $("$node" --version)"
        mmdebstrap --quiet --mode=root --format=tar --variant=essential --include="$CHROMIUM_PKGS" \
          --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
          --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
          --dpkgopt='path-include=/usr/share/doc/*/copyright' \
          --skip=essential/unlink \
          --setup-hook="mkdir -p \"\$1/var/cache/apt/archives\"" \
          --setup-hook="sync-in $WORK/debs /var/cache/apt/archives/" \
          --customize-hook="sync-out /var/cache/apt/archives $WORK/debs" \
          --customize-hook="copy-in $node /usr/bin/" \
          --customize-hook="mkdir -p \"\$1/usr/lib/node_modules\"" \
          --customize-hook="copy-in $npm_dir /usr/lib/node_modules/" \
          --customize-hook="bash $HOOK chromium \"\$1\"" \
          "$SUITE" "$tar.tmp" "$(sources)" || die "mmdebstrap failed for base $name"
        # Superseded .debs are not refreshed by sync-out: drop those untouched for 30 days.
        find "$WORK/debs" -name '*.deb' -mtime +30 -delete
        ;;
      node)
        log "base $name: $BASE_REF + host Node $("$node" --version)"
        local ctx=$WORK/ctx/base-node
        rm -rf "$ctx"; mkdir -p "$ctx/usr/bin" "$ctx/usr/lib/node_modules"
        cp "$node" "$ctx/usr/bin/node"; cp -a "$npm_dir" "$ctx/usr/lib/node_modules/npm"
        ln -s ../lib/node_modules/npm/bin/npm-cli.js "$ctx/usr/bin/npm"
        ln -s ../lib/node_modules/npm/bin/npx-cli.js "$ctx/usr/bin/npx"
        printf 'FROM %s\nCOPY usr /usr\n' "$BASE_REF" >"$ctx/Containerfile"
        pm build --quiet --pull=never --network=none -f "$ctx/Containerfile" -t "$ref" "$ctx" >/dev/null ||
          die "building base $name failed"
        rm -rf "$ctx"
        log "base $name: built in $((SECONDS - t0)) s"
        prune_base "$name" "$ref"
        BASE_REF=$ref; return
        ;;
    esac
    mv "$tar.tmp" "$tar"
    log "base $name: root file system built in $((SECONDS - t0)) s ($(du -m "$tar" | cut -f1) MB)"
  fi
  pm import --quiet "${BASE_ENV[@]}" "$tar" "$ref" >/dev/null || die "podman import of base $name failed"
  find "$WORK/bases" -name "$name-*.tar" ! -name "$(basename "$tar")" -delete
  prune_base "$name" "$ref"
  BASE_REF=$ref
}

# Older recipes of a base are no longer needed.
prune_base() {
  pm images --format '{{.Repository}}:{{.Tag}}' "localhost/sandcanary-base-$1" | grep -vxF "$2" |
    xargs -r podman rmi --force >/dev/null 2>&1 || true
}

# --- host binaries --------------------------------------------------------------------------------------
HOST_BINS_BUILT=
host_bins() {
  [[ -n $HOST_BINS_BUILT ]] && return
  log "cargo build --release (sandcanary-proxy, sandcanary-plugin) in $CARGO_TARGET_DIR"
  (cd "$ROOT" && cargo build --release --locked -p sandcanary-proxy --bin sandcanary-proxy \
    -p sandcanary-plugin --bin sandcanary-plugin) || die "cargo build failed"
  HOST_BINS_BUILT=1
}

declare -A GLIBC_CHECKED=()
# The binaries need a glibc no newer than the base's (Debian's libc6 of $SUITE).
check_glibc() {
  local bin=$1 base=$2 need have
  need=$(grep -aoE 'GLIBC_[0-9]+\.[0-9]+' "$bin" | sed 's/GLIBC_//' | sort -V | tail -1)
  have=$(pm run --rm --pull=never --network=none --entrypoint /lib/x86_64-linux-gnu/libc.so.6 "$base" |
    sed -nE '1s/.*version ([0-9]+\.[0-9]+).*/\1/p')
  [[ -n $have ]] || die "cannot read the glibc version of $base"
  [[ $(printf '%s\n%s\n' "$need" "$have" | sort -V | tail -1) == "$have" ]] ||
    die "$(basename "$bin") needs glibc $need, the base $base has $have: build the binaries on Debian $SUITE"
}

# --- one image ------------------------------------------------------------------------------------------
# npm_modules DIR: `npm ci --omit=dev` on the host for DIR's package-lock.json (the host's npm, its cache and
# registry settings), kept per lockfile under $WORK/npm; prints the node_modules path.
npm_modules() {
  local src=$1 key dir
  key=$(cat "$src/package.json" "$src/package-lock.json" | sha)
  dir=$WORK/npm/${key:0:16}
  if [[ ! -f $dir/.done ]]; then
    rm -rf "$dir"; mkdir -p "$dir"
    cp "$src/package.json" "$src/package-lock.json" "$dir/"
    log "npm ci --omit=dev for $src"
    (cd "$dir" && npm ci --omit=dev --prefer-offline --no-audit --no-fund --loglevel=error >&2) ||
      die "npm ci failed in $src"
    touch "$dir/.done"
  fi
  printf '%s\n' "$dir/node_modules"
}

# stage_context KIND DIR: copies exactly the files the Dockerfile's stages copy.
stage_context() {
  local kind=$1 dir=$2 mods
  rm -rf "$dir"; mkdir -p "$dir/prebuilt"
  case $kind in
    programs)
      mkdir -p "$dir/deploy/sandbox"
      cp "$ROOT"/deploy/sandbox/{package.json,package-lock.json,server.js} "$dir/deploy/sandbox/"
      cp "$CARGO_TARGET_DIR"/release/{sandcanary-proxy,sandcanary-plugin} "$dir/prebuilt/"
      mods=$(npm_modules "$ROOT/deploy/sandbox") || exit 1
      cp -al "$mods" "$dir/prebuilt/sandbox-modules" ;;
    sandbox)
      cp "$ROOT"/deploy/sandbox/{package.json,package-lock.json,server.js} "$dir/"
      mods=$(npm_modules "$ROOT/deploy/sandbox") || exit 1
      cp -al "$mods" "$dir/prebuilt/node_modules" ;;
    agent)
      cp "$ROOT"/test/node/agent/{package.json,package-lock.json,agent.js} "$dir/"
      mods=$(npm_modules "$ROOT/test/node/agent") || exit 1
      cp -al "$mods" "$dir/prebuilt/node_modules" ;;
    argo)
      local kube_bin
      kube_bin=$("$ROOT/test/kube/build.sh" rollouts) || die "test/kube/build.sh rollouts failed"
      cp "$kube_bin/rollouts-controller" "$dir/prebuilt/" ;;
  esac
}

build_one() {
  local name=$1 ref=$2 dockerfile=$3 target=$4 kind=$5 base=$6
  local archive=$IMAGES_DIR/$name.tar ctx=$WORK/ctx/$name key args=() t0=$SECONDS
  ensure_base "$base"
  if [[ $kind == programs && -z ${GLIBC_CHECKED[$BASE_REF]:-} ]]; then
    host_bins
    check_glibc "$CARGO_TARGET_DIR/release/sandcanary-proxy" "$BASE_REF"
    check_glibc "$CARGO_TARGET_DIR/release/sandcanary-plugin" "$BASE_REF"
    GLIBC_CHECKED[$BASE_REF]=1
  fi
  case $kind:$base in
    argo:runtime) args=(--build-arg "RUNTIME_BASE=$BASE_REF") ;;
    *:runtime) args=(--build-arg "PROXY_BASE=$BASE_REF" --build-arg "PLUGIN_BASE=$BASE_REF") ;;
    *:chromium) args=(--build-arg "NODE_IMAGE=$BASE_REF" --build-arg INSTALL_CHROMIUM=false) ;;
    *:node) args=(--build-arg "NODE_IMAGE=$BASE_REF") ;;
  esac
  [[ $target != - ]] && args+=(--target "$target")
  stage_context "$kind" "$ctx"
  key=$({ echo "v1 $ref $target ${args[*]}"; pm image inspect --format '{{.Id}}' "$BASE_REF"
          cat "$ROOT/$dockerfile"; # node_modules follow from the lockfile, which is hashed.
          (cd "$ctx" && find . -path '*/node_modules' -prune -o -path ./prebuilt/sandbox-modules -prune -o -type f -print0 |
            sort -z | xargs -0 sha256sum); } | sha)
  if [[ -s $archive && -f $archive.key && $(cat "$archive.key") == "$key" ]]; then
    # The archive is what counts; podman's copy (which the tests run) may have been removed.
    pm image exists "$ref" || pm load --quiet -i "$archive" >/dev/null || die "$name: podman load $archive failed"
    log "$name: up to date ($ref)"; rm -rf "$ctx"; return
  fi
  log "$name: building $ref ($dockerfile${target:+ --target $target})"
  # No network in the build and nothing pulled: every FROM is a local base or a stage.
  pm build --quiet --pull=never --network=none --layers "${args[@]}" -f "$ROOT/$dockerfile" -t "$ref" "$ctx" >/dev/null ||
    die "$name: podman build failed"
  mkdir -p "$IMAGES_DIR"
  rm -f "$archive.tmp"
  pm save --quiet --format docker-archive -o "$archive.tmp" "$ref" || die "$name: podman save failed"
  mv "$archive.tmp" "$archive"; echo "$key" >"$archive.key"
  rm -rf "$ctx"
  log "$name: $archive ($(du -m "$archive" | cut -f1) MB) in $((SECONDS - t0)) s"
}

cmd_build() {
  local want=("$@") line f found
  for f in podman mmdebstrap runc cargo; do command -v "$f" >/dev/null || die "$f is not installed (make setup-images)"; done
  [[ $(id -u) -eq 0 ]] || die "run as root: mmdebstrap --mode=root and rootful podman (runc, cgroups v1)"
  mkdir -p "$WORK"
  # One build at a time per storage (other suites may build the same images concurrently).
  exec 9>"$WORK/lock"; flock 9
  local t0=$SECONDS
  for line in "${IMAGES[@]}"; do
    read -r -a f <<<"$line"
    if ((${#want[@]})); then
      found=; for w in "${want[@]}"; do [[ $w == "${f[0]}" ]] && found=1; done
      [[ -n $found ]] || continue
    fi
    build_one "${f[@]}"
  done
  # Replaced images (untagged, nothing built on them) only take space.
  pm image prune --force >/dev/null || true
  log "done in $((SECONDS - t0)) s"
}

cmd_list() {
  local line f
  for line in "${IMAGES[@]}"; do
    read -r -a f <<<"$line"
    printf '%s\t%s\n' "${f[1]}" "$IMAGES_DIR/${f[0]}.tar"
  done
}

case ${1:-} in
  build) shift; for n in "$@"; do cmd_list | cut -f2 | grep -qxF "$IMAGES_DIR/$n.tar" || die "unknown image $n"; done
         podman_env; cmd_build "$@" ;;
  list) cmd_list ;;
  podman) shift; podman_env; exec podman "$@" ;;
  clean) podman_env; mkdir -p "$WORK"; exec 9>"$WORK/lock"; flock 9
         podman rm --all --force >/dev/null 2>&1 || true; podman rmi --all --force >/dev/null 2>&1 || true
         rm -rf "$IMAGES_DIR" "$WORK/storage" "$WORK/bases" "$WORK/debs" "$WORK/npm" "$WORK/ctx" "$WORK/conf"
         log "removed $IMAGES_DIR and $WORK" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
