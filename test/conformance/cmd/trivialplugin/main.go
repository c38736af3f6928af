// Command trivialplugin is the benchmark baseline: a metric plugin written in Go with argo's own
// rpc package, doing the same trivial work as the Rust conformance plugin.
package main

import (
	"github.com/argoproj/argo-rollouts/metricproviders/plugin/rpc"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/argoproj/argo-rollouts/utils/plugin/types"
	goplugin "github.com/hashicorp/go-plugin"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type trivial struct{}

func (trivial) InitPlugin() types.RpcError { return types.RpcError{} }

func (trivial) Run(_ *v1alpha1.AnalysisRun, m v1alpha1.Metric) v1alpha1.Measurement {
	now := metav1.Now()
	return v1alpha1.Measurement{Phase: v1alpha1.AnalysisPhaseSuccessful, StartedAt: &now, FinishedAt: &now, Value: "1",
		Metadata: map[string]string{"metric.name": m.Name}}
}

func (trivial) Resume(_ *v1alpha1.AnalysisRun, _ v1alpha1.Metric, m v1alpha1.Measurement) v1alpha1.Measurement {
	return m
}

func (trivial) Terminate(_ *v1alpha1.AnalysisRun, _ v1alpha1.Metric, m v1alpha1.Measurement) v1alpha1.Measurement {
	return m
}

func (trivial) GarbageCollect(*v1alpha1.AnalysisRun, v1alpha1.Metric, int) types.RpcError {
	return types.RpcError{}
}

func (trivial) Type() string { return "Trivial" }

func (trivial) GetMetadata(v1alpha1.Metric) map[string]string { return nil }

func main() {
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: goplugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: "ARGO_ROLLOUTS_RPC_PLUGIN", MagicCookieValue: "metricprovider"},
		Plugins:         map[string]goplugin.Plugin{"RpcMetricProviderPlugin": &rpc.RpcMetricProviderPlugin{Impl: trivial{}}},
	})
}
