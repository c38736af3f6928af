//go:build tools

// Package tools pins the programs this module builds (see build.sh) so `go mod tidy` keeps them in go.sum.
// The build tag keeps the file out of every real build: main packages cannot be imported.
package tools

import (
	_ "github.com/argoproj/argo-rollouts/cmd/rollouts-controller"
	_ "github.com/argoproj/argo-rollouts/test/cmd/metrics-plugin-sample"
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
