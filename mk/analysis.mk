# analysis (plugin/analysis, the sandcanary-plugin binary): its plain Rust tests run in `cargo test
# --workspace`; this fragment adds the pod-log reader against the real kube-apiserver, and the Run
# latency benchmark.

# The kube-rs pod-log reader through a real kube-apiserver, which proxies pods/log to a test kubelet
# (HTTPS, certificate from the test CA, registered as a Node); SANDCANARY_KUBE_KUBELET_TLS=1 makes
# apiserver.sh verify kubelet certificates against that CA. About 20 s with cached binaries.
.PHONY: test-plugin-kube-logs
TEST_TARGETS += test-plugin-kube-logs
test-plugin-kube-logs: setup-kube
	SANDCANARY_KUBE_KUBELET_TLS=1 test/kube/apiserver.sh run -- \
	  $(CARGO) test -p sandcanary-plugin --test pod_logs -- --include-ignored
