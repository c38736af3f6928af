# manifests: every manifest of the repository against one real kube-apiserver (test/manifests/run.sh: dry
# runs of deploy/ with its kustomize overlays and argo-rollouts Components, analysis-templates/, rollouts/;
# SandboxTemplate pod templates as Pods; each overlay's RBAC through SubjectAccessReviews; invalid manifests
# must be rejected; the real proxy binary started with each cluster overlay's environment and RBAC), and the
# Dockerfiles' public build path checked against the repository (test/manifests/images.py; the images
# themselves are built and run by make test-images, mk/images.mk).
.PHONY: setup-manifests test-manifests
SETUP_TARGETS += setup-manifests
TEST_TARGETS += test-manifests

setup-manifests:
	@missing=(); for c in python3 curl; do command -v $$c >/dev/null || missing+=($$c); done; \
	if (($${#missing[@]})); then echo "setup-manifests: installing $${missing[*]}" >&2; \
	  sudo_cmd=(); [[ $$(id -u) -ne 0 ]] && sudo_cmd=(sudo); \
	  "$${sudo_cmd[@]}" apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive "$${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$${missing[@]}" >/dev/null; fi

test-manifests: setup-system setup-node setup-kube setup-manifests
	python3 test/manifests/images.py
	$(CARGO) build -p sandcanary-proxy --bin sandcanary-proxy
	test/manifests/run.sh
