package conformance

import (
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/metricproviders/plugin/client"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/argoproj/argo-rollouts/utils/config"
	"github.com/argoproj/argo-rollouts/utils/plugin"
	goplugin "github.com/hashicorp/go-plugin"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"sandcanary.invalid/conformance/fixture"
)

// pluginName is what the ConfigMap registers; argo requires the <org>/<name> form.
const pluginName = "sandcanary/sandcanary"

// TestC17ControllerPath drives the real sandcanary-plugin through argo's own start-up path:
// ConfigMap -> InitializeConfig -> DownloadPlugins (file://) -> GetMetricPlugin.
func TestC17ControllerPath(t *testing.T) {
	bin := pluginBinary(t, "SANDCANARY_PLUGIN_BIN")
	t.Setenv("POD_NAMESPACE", "argo-rollouts")
	t.Chdir(t.TempDir())
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "argo-rollouts-config", Namespace: "argo-rollouts"},
		Data:       map[string]string{"metricProviderPlugins": "- name: " + pluginName + "\n  location: file://" + bin + "\n"},
	}
	kc := fake.NewSimpleClientset(cm)
	if _, err := config.InitializeConfig(kc, "argo-rollouts-config"); err != nil {
		t.Fatalf("InitializeConfig: %v", err)
	}
	t.Cleanup(config.UnInitializeConfig)
	if err := plugin.DownloadPlugins(plugin.FileDownloaderImpl{}, kc); err != nil {
		t.Fatalf("DownloadPlugins: %v", err)
	}
	t.Cleanup(goplugin.CleanupClients)

	metric := fixture.Metric("bench", pluginName, map[string]any{"pollSeconds": 1, "placeholder": map[string]any{"durationMs": 300, "score": 87}})
	p, err := client.GetMetricPlugin(metric)
	if err != nil {
		t.Fatalf("GetMetricPlugin: %v", err)
	}
	p2, err := client.GetMetricPlugin(metric)
	if err != nil {
		t.Fatalf("second GetMetricPlugin (ping path): %v", err)
	}
	if p != p2 {
		t.Fatalf("second GetMetricPlugin started a new plugin")
	}
	if md := p.GetMetadata(metric); md["job"] != "placeholder" || md["error"] != "" {
		t.Fatalf("GetMetadata = %v", md)
	}

	run := &v1alpha1.AnalysisRun{ObjectMeta: metav1.ObjectMeta{Name: "ar", Namespace: "ns", UID: "uid-17"}}
	start := time.Now()
	m := p.Run(run, metric)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Run took %v; it must return at once", d)
	}
	if m.Phase != v1alpha1.AnalysisPhaseRunning || m.ResumeAt == nil || m.Metadata["sandcanary.handle"] == "" {
		t.Fatalf("Run = %+v", m)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !m.Phase.Completed() {
		if time.Now().After(deadline) {
			t.Fatalf("measurement never completed: %+v", m)
		}
		time.Sleep(100 * time.Millisecond)
		if _, err := client.GetMetricPlugin(metric); err != nil {
			t.Fatalf("GetMetricPlugin while the job runs: %v", err)
		}
		m = p.Resume(run, metric, m)
	}
	if m.Phase != v1alpha1.AnalysisPhaseSuccessful || m.Value != "87" || m.FinishedAt == nil {
		t.Fatalf("final measurement %+v", m)
	}

	// Terminate cancels a running job and returns a completed phase.
	long := fixture.Metric("long", pluginName, map[string]any{"placeholder": map[string]any{"durationMs": 600000}})
	m = p.Run(run, long)
	if m.Phase != v1alpha1.AnalysisPhaseRunning {
		t.Fatalf("Run(long) = %+v", m)
	}
	m = p.Terminate(run, long, m)
	if !m.Phase.Completed() || strings.HasPrefix(m.Message, "failed to terminate") {
		t.Fatalf("Terminate = %+v", m)
	}
	if e := p.GarbageCollect(run, metric, 10); e.HasError() {
		t.Fatalf("GarbageCollect: %v", e.Error())
	}

	// A bad configuration is an Error measurement with argo's prefix, not a hang.
	bad := fixture.Metric("bad", pluginName, map[string]any{"pollSeconds": "soon"})
	m = p.Run(run, bad)
	if m.Phase != v1alpha1.AnalysisPhaseError || !strings.Contains(m.Message, "failed to run via plugin: invalid sandcanary plugin configuration") {
		t.Fatalf("bad config Run = %q %q", m.Phase, m.Message)
	}
}
