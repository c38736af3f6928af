// Package rolloutsplugin proves the metric-plugin path of the real Argo Rollouts controller works in this
// environment: a plugin registered in argo-rollouts-config with a file:// location is copied into the
// controller's plugin-bin, executed over go-plugin, and decides AnalysisRuns. The plugin is Argo's own
// sample (it queries the Prometheus HTTP API, served here by a small loopback stand-in).
package rolloutsplugin

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"

	"sandcanary/test/kube/kubeenv"
)

const (
	namespace  = "argo-plugins"
	pluginName = "argoproj/sample-prometheus"
)

var (
	env        *kubeenv.Env
	controller *kubeenv.RolloutsController
	dyn        dynamic.Interface
	runGVR     = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "analysisruns"}
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var err error
	if env, err = kubeenv.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "start API server:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	plugin := filepath.Join(env.BinDir, "metrics-plugin-sample")
	if _, err := os.Stat(plugin); err != nil {
		fmt.Fprintln(os.Stderr, "sample plugin not built (run build.sh all):", err)
		return 1
	}
	cm := filepath.Join(env.Dir, "argo-rollouts-config.yaml")
	cmYAML := fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: argo-rollouts-config
data:
  metricProviderPlugins: |-
    - name: %q
      location: "file://%s"
`, pluginName, plugin)
	if err := os.WriteFile(cm, []byte(cmYAML), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if controller, err = env.StartRolloutsController(ctx, namespace, cm); err != nil {
		fmt.Fprintln(os.Stderr, "start rollouts controller:", err)
		return 1
	}
	if dyn, err = dynamic.NewForConfig(env.Config); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if code != 0 {
		if log, err := os.ReadFile(controller.LogFile); err == nil {
			lines := strings.Split(string(log), "\n")
			if len(lines) > 80 {
				lines = lines[len(lines)-80:]
			}
			fmt.Fprintf(os.Stderr, "--- rollouts controller log (tail) ---\n%s\n", strings.Join(lines, "\n"))
		}
	}
	return code
}

// prometheus answers instant queries (GET or POST /api/v1/query) in the Prometheus HTTP API's shape with
// a one-sample vector holding value, and counts the queries it served.
func prometheus(t *testing.T, value string) (string, *atomic.Int64) {
	t.Helper()
	hits := &atomic.Int64{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/query", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("query") == "" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"status":"error","errorType":"bad_data","error":"missing query"}`))
			return
		}
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"status": "success",
			"data": map[string]any{
				"resultType": "vector",
				"result": []any{map[string]any{
					"metric": map[string]any{"__name__": "sandcanary_score"},
					"value":  []any{float64(time.Now().Unix()), value},
				}},
			},
		})
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String(), hits
}

func createRun(t *testing.T, name, address string) {
	t.Helper()
	run := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
		"metadata": map[string]any{"name": name, "namespace": namespace},
		"spec": map[string]any{"metrics": []any{map[string]any{
			"name": "score", "successCondition": "result[0] >= 0.9",
			"provider": map[string]any{"plugin": map[string]any{
				pluginName: map[string]any{"address": address, "query": "sandcanary_score"},
			}},
		}}},
	}}
	if _, err := dyn.Resource(runGVR).Namespace(namespace).Create(context.Background(), run, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func waitPhase(t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	var last *unstructured.Unstructured
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, 120*time.Second, true,
		func(ctx context.Context) (bool, error) {
			got, err := dyn.Resource(runGVR).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			last = got
			phase, _, _ := unstructured.NestedString(got.Object, "status", "phase")
			return phase != "" && phase != "Pending" && phase != "Running", nil
		})
	if err != nil {
		t.Fatalf("AnalysisRun %s did not complete: %v (status %v)", name, err, last.Object["status"])
	}
	return last
}

func check(t *testing.T, run *unstructured.Unstructured, wantPhase, wantValue string) {
	t.Helper()
	phase, _, _ := unstructured.NestedString(run.Object, "status", "phase")
	if phase != wantPhase {
		t.Fatalf("phase %q, want %q; status %v", phase, wantPhase, run.Object["status"])
	}
	results, _, _ := unstructured.NestedSlice(run.Object, "status", "metricResults")
	if len(results) != 1 {
		t.Fatalf("metricResults %v", results)
	}
	ms, _, _ := unstructured.NestedSlice(results[0].(map[string]any), "measurements")
	if len(ms) == 0 || ms[0].(map[string]any)["value"] != wantValue {
		t.Fatalf("measurements %v, want value %s", ms, wantValue)
	}
}

// TestPluginFromFileLocation: the controller copied the plugin into plugin-bin and runs it; a good score
// passes and a bad one fails, with the plugin's measured value recorded.
func TestPluginFromFileLocation(t *testing.T) {
	installed := filepath.Join(controller.WorkDir, "plugin-bin", "argoproj", "sample-prometheus")
	if _, err := os.Stat(installed); err != nil {
		t.Fatalf("plugin not installed from its file:// location: %v", err)
	}
	good, goodHits := prometheus(t, "0.97")
	bad, badHits := prometheus(t, "0.42")
	createRun(t, "good", good)
	createRun(t, "bad", bad)
	check(t, waitPhase(t, "good"), "Successful", "[0.97]")
	check(t, waitPhase(t, "bad"), "Failed", "[0.42]")
	if goodHits.Load() < 1 || badHits.Load() < 1 {
		t.Fatalf("the plugin did not query the servers (good %d, bad %d)", goodHits.Load(), badHits.Load())
	}
}
