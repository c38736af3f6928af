package rollouts

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
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

const namespace = "argo-rollouts"

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
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop API server:", err)
		}
	}()
	if controller, err = env.StartRolloutsController(ctx, namespace, ""); err != nil {
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
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			fmt.Fprintf(os.Stderr, "--- rollouts controller log (tail) ---\n%s\n", strings.Join(lines, "\n"))
		}
	}
	return code
}

// healthServer answers {"status": <status>} on loopback and counts the requests it served.
func healthServer(t *testing.T, status string) (url string, hits *atomic.Int64) {
	t.Helper()
	hits = &atomic.Int64{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status": %q, "p95ms": 42}`, status)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/health", hits
}

func analysisRun(name, url string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
		"metadata": map[string]any{"name": name, "namespace": namespace},
		"spec": map[string]any{"metrics": []any{map[string]any{
			"name": "health", "count": int64(2), "interval": "1s",
			"successCondition": "result == 'ok'",
			"provider": map[string]any{"web": map[string]any{
				"url": url, "jsonPath": "{$.status}", "timeoutSeconds": int64(5),
			}},
		}}},
	}}
}

// waitPhase waits until the AnalysisRun reaches a completed phase and returns it.
func waitPhase(t *testing.T, name string) (string, *unstructured.Unstructured) {
	t.Helper()
	var phase string
	var last *unstructured.Unstructured
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, 90*time.Second, true,
		func(ctx context.Context) (bool, error) {
			got, err := dyn.Resource(runGVR).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			last = got
			phase, _, _ = unstructured.NestedString(got.Object, "status", "phase")
			switch phase {
			case "Successful", "Failed", "Error", "Inconclusive":
				return true, nil
			}
			return false, nil
		})
	if err != nil {
		t.Fatalf("AnalysisRun %s did not complete (last phase %q): %v", name, phase, err)
	}
	return phase, last
}

func metricMeasurements(t *testing.T, run *unstructured.Unstructured) []any {
	results, _, _ := unstructured.NestedSlice(run.Object, "status", "metricResults")
	if len(results) != 1 {
		t.Fatalf("want one metric result, got %v", results)
	}
	ms, _, _ := unstructured.NestedSlice(results[0].(map[string]any), "measurements")
	return ms
}

// TestAnalysisRunSuccessful: a healthy endpoint measured twice makes the run Successful.
func TestAnalysisRunSuccessful(t *testing.T) {
	url, hits := healthServer(t, "ok")
	if _, err := dyn.Resource(runGVR).Namespace(namespace).Create(context.Background(), analysisRun("healthy", url), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	phase, run := waitPhase(t, "healthy")
	if phase != "Successful" {
		t.Fatalf("phase %q, status %v", phase, run.Object["status"])
	}
	if ms := metricMeasurements(t, run); len(ms) != 2 {
		t.Fatalf("want 2 measurements, got %d", len(ms))
	}
	if hits.Load() < 2 {
		t.Fatalf("the controller measured without calling the server (%d hits)", hits.Load())
	}
}

// TestAnalysisRunFailed: the same template against a degraded endpoint fails the run.
func TestAnalysisRunFailed(t *testing.T) {
	url, hits := healthServer(t, "degraded")
	if _, err := dyn.Resource(runGVR).Namespace(namespace).Create(context.Background(), analysisRun("degraded", url), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	phase, run := waitPhase(t, "degraded")
	if phase != "Failed" {
		t.Fatalf("phase %q, status %v", phase, run.Object["status"])
	}
	if hits.Load() < 1 {
		t.Fatalf("the controller failed the run without calling the server")
	}
	ms := metricMeasurements(t, run)
	// The web provider stores the JSONPath result as JSON text, so the string arrives quoted.
	if len(ms) == 0 || strings.Trim(fmt.Sprint(ms[0].(map[string]any)["value"]), `"`) != "degraded" {
		t.Fatalf("measurement does not carry the measured value: %v", ms)
	}
}

// TestOtherNamespaceIgnored: the namespace-scoped controller leaves AnalysisRuns elsewhere alone.
func TestOtherNamespaceIgnored(t *testing.T) {
	ctx := context.Background()
	url, hits := healthServer(t, "ok")
	out, err := env.Kubectl(ctx, nil, "create", "namespace", "elsewhere")
	if err != nil {
		t.Fatalf("create namespace: %v %s", err, out)
	}
	run := analysisRun("elsewhere", url)
	run.SetNamespace("elsewhere")
	if _, err := dyn.Resource(runGVR).Namespace("elsewhere").Create(ctx, run, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	got, err := dyn.Resource(runGVR).Namespace("elsewhere").Get(ctx, "elsewhere", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if phase, _, _ := unstructured.NestedString(got.Object, "status", "phase"); phase != "" || hits.Load() != 0 {
		t.Fatalf("controller reconciled a run outside its namespace: phase %q, %d hits", phase, hits.Load())
	}
}
