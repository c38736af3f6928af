//go:build tools

// Package tools pins the node programs build.sh builds (kubelet, kube-scheduler, kube-proxy) so their
// dependencies stay in go.sum. The build tag keeps the file out of every real build.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
