# kubeproxy: the proxy's pod identity and sandboxclaim backend against the real kube-apiserver of
# test/kube (started, used and stopped by apiserver.sh run; the tests install deploy/crds themselves).
# Each kube_* test binary runs under its own API server; kube_outage stops and restarts it mid-run.
KUBEPROXY_TESTS := kube_identity kube_sandboxclaim kube_admission kube_isola kube_kars kube_rbac kube_e2e kube_outage kube_replicas kube_ipv6

.PHONY: test-kube-proxy
TEST_TARGETS += test-kube-proxy

test-kube-proxy: setup-kube setup-node
	@set -e; for t in $(KUBEPROXY_TESTS); do \
	  echo "== test-kube-proxy: $$t"; \
	  test/kube/apiserver.sh run -- cargo test -p sandcanary-proxy --test $$t -- --include-ignored; \
	done
