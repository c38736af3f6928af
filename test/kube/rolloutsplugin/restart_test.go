package rolloutsplugin

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"

	"sandcanary/test/kube/kubeenv"
)

// pluginPIDs lists the processes running the installed plugin binary (started by our controller).
func pluginPIDs(t *testing.T, binary string) []int {
	t.Helper()
	pids, err := kubeenv.PIDsRunning(binary)
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

func measurementCount(run *unstructured.Unstructured) int {
	results, _, _ := unstructured.NestedSlice(run.Object, "status", "metricResults")
	if len(results) == 0 {
		return 0
	}
	ms, _, _ := unstructured.NestedSlice(results[0].(map[string]any), "measurements")
	return len(ms)
}

// TestPluginRestartedAfterKill: the plugin process is killed between measurements; the controller starts
// a new one and the AnalysisRun still completes.
func TestPluginRestartedAfterKill(t *testing.T) {
	binary := filepath.Join(controller.WorkDir, "plugin-bin", "argoproj", "sample-prometheus")
	address, hits := prometheus(t, "0.99")
	run := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
		"metadata": map[string]any{"name": "restart", "namespace": namespace},
		"spec": map[string]any{"metrics": []any{map[string]any{
			"name": "score", "count": int64(4), "interval": "2s", "successCondition": "result[0] >= 0.9",
			"provider": map[string]any{"plugin": map[string]any{
				pluginName: map[string]any{"address": address, "query": "sandcanary_score"},
			}},
		}}},
	}}
	api := dyn.Resource(runGVR).Namespace(namespace)
	if _, err := api.Create(context.Background(), run, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Wait for the first measurement, then kill every process of the plugin.
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true,
		func(ctx context.Context) (bool, error) {
			got, err := api.Get(ctx, "restart", metav1.GetOptions{})
			return err == nil && measurementCount(got) >= 1, err
		})
	if err != nil {
		t.Fatalf("no first measurement: %v", err)
	}
	before := pluginPIDs(t, binary)
	if len(before) == 0 {
		t.Fatal("no plugin process found while the analysis is running")
	}
	for _, pid := range before {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill plugin %d: %v", pid, err)
		}
	}
	hitsAtKill := hits.Load()

	got := waitPhase(t, "restart")
	phase, _, _ := unstructured.NestedString(got.Object, "status", "phase")
	if phase != "Successful" {
		t.Fatalf("phase %q after the plugin was killed; status %v", phase, got.Object["status"])
	}
	if hits.Load() <= hitsAtKill {
		t.Fatalf("no measurement reached the server after the kill (%d before, %d after)", hitsAtKill, hits.Load())
	}
	after := pluginPIDs(t, binary)
	for _, old := range before {
		for _, pid := range after {
			if pid == old {
				t.Fatalf("plugin pid %d survived SIGKILL", pid)
			}
		}
	}
	if len(after) == 0 {
		t.Fatal("the controller did not start the plugin again")
	}
	t.Logf("plugin pids before kill %v, after %v; status %v", before, after, got.Object["status"])
}
