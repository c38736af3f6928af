# images: the container images (proxy, plugin, proxy-local, sandbox, the test agent, and Argo Rollouts' controller
# from test/kube's Go-module build for make test-node-argo) built from
# the repository's Dockerfiles with Debian's podman and runc, no registry (test/node/images.sh; bases from
# Debian's packages with mmdebstrap, Rust binaries and node_modules from the host), then every container
# run for real on a closed network, and the archives imported into a private containerd
# (test/node/images-test.sh). Measured 2026-12-06 on the shared 2-core
# machine (load 8-15): cold 4.6 min for bases and images (the Chromium base 3.1 min) plus the release build
# of sandcanary-proxy and sandcanary-plugin (11.5 CPU-minutes, 30 min wall under that load), plus 1 min of
# container checks; warm (nothing changed) about 1 min in all. Needs root (mmdebstrap --mode=root, rootful
# podman).
.PHONY: setup-images images test-images
SETUP_TARGETS += setup-images
TEST_TARGETS += test-images
IMAGES_APT := podman runc mmdebstrap containerd curl util-linux

setup-images:
	@missing=(); for p in $(IMAGES_APT); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing+=($$p); done; \
	if (($${#missing[@]})); then echo "setup-images: installing $${missing[*]}" >&2; \
	  sudo_cmd=(); [[ $$(id -u) -ne 0 ]] && sudo_cmd=(sudo); \
	  "$${sudo_cmd[@]}" apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive "$${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$${missing[@]}" >/dev/null; fi

# Builds what changed and writes the archives (test/node/README.md, "Images").
images: setup-system setup-node setup-images
	test/node/images.sh build

test-images: setup-system setup-node setup-images setup-kube setup-go-goplugin
	test/node/images-test.sh
