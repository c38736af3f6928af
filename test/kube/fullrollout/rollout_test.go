// Package fullrollout drives complete Argo Rollouts canaries on the real API server: kube-controller-manager
// turns the controller's ReplicaSets into pods, nodesim schedules and "runs" them, and the real Argo
// Rollouts controller walks the canary steps, including an analysis step against a loopback endpoint.
package fullrollout

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"sandcanary/test/kube/kubeenv"
	"sandcanary/test/kube/nodesim"
)

const namespace = "rollout-e2e"

var (
	env         *kubeenv.Env
	controller  *kubeenv.RolloutsController
	dyn         dynamic.Interface
	rolloutGVR  = kubeenv.RolloutGVR
	templateGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "analysistemplates"}
	runGVR      = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "analysisruns"}
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	startCtx, startCancel := context.WithTimeout(ctx, 10*time.Minute)
	defer startCancel()
	var err error
	if env, err = kubeenv.Start(startCtx); err != nil {
		fmt.Fprintln(os.Stderr, "start API server:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if err := env.StartControllerManager(); err != nil {
		fmt.Fprintln(os.Stderr, "start kube-controller-manager:", err)
		return 1
	}
	client, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := nodesim.New(client, nodesim.Options{IPPrefix: "127.0.201."}).Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "node simulator:", err)
		return 1
	}
	if controller, err = env.StartRolloutsController(startCtx, namespace, ""); err != nil {
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

// healthEndpoint serves {"status": status} on loopback, standing in for a proxy's health report.
func healthEndpoint(t *testing.T, status string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"status": %q}`, status)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String() + "/health"
}

func create(t *testing.T, gvr schema.GroupVersionResource, obj map[string]any) {
	t.Helper()
	u := &unstructured.Unstructured{Object: obj}
	if _, err := dyn.Resource(gvr).Namespace(namespace).Create(context.Background(), u, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create %s: %v", u.GetName(), err)
	}
}

func template(name, url string) map[string]any {
	return map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{"metrics": []any{map[string]any{
			"name": "health", "count": int64(2), "interval": "1s", "successCondition": "result == 'ok'",
			"provider": map[string]any{"web": map[string]any{"url": url, "jsonPath": "{$.status}"}},
		}}},
	}
}

func rollout(name, templateName string) map[string]any {
	return map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"replicas": int64(2), "revisionHistoryLimit": int64(2),
			"selector": map[string]any{"matchLabels": map[string]any{"app": name}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": name}},
				"spec": map[string]any{"containers": []any{map[string]any{
					"name": "proxy", "image": "sandcanary/proxy:v1",
				}}},
			},
			"strategy": map[string]any{"canary": map[string]any{"steps": []any{
				map[string]any{"setWeight": int64(50)},
				map[string]any{"pause": map[string]any{"duration": "1s"}},
				map[string]any{"analysis": map[string]any{"templates": []any{map[string]any{"templateName": templateName}}}},
			}}},
		},
	}
}

// waitRollout polls the Rollout until done says so, failing with its last status after the timeout.
func waitRollout(t *testing.T, name, what string, done func(status map[string]any) bool) map[string]any {
	t.Helper()
	status, err := kubeenv.WaitRollout(dyn, namespace, name, 250*time.Millisecond, 3*time.Minute, done)
	if err != nil {
		t.Fatalf("rollout %s: %s not reached: %v; status %v", name, what, err, status)
	}
	return status
}

func str(m map[string]any, path ...string) string { return kubeenv.Field(m, path...) }

func healthyAt(status map[string]any) bool { return kubeenv.RolloutHealthy(status, 2) }

// deployV1ThenV2 creates the Rollout, waits until v1 is fully available, then changes the image to v2.
func deployV1ThenV2(t *testing.T, name, templateName string) (v1Hash string) {
	t.Helper()
	create(t, rolloutGVR, rollout(name, templateName))
	status := waitRollout(t, name, "v1 Healthy with 2 available pods", healthyAt)
	v1Hash = str(status, "stableRS")
	patch := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"proxy","image":"sandcanary/proxy:v2"}]}}}}`)
	if _, err := dyn.Resource(rolloutGVR).Namespace(namespace).Patch(context.Background(), name,
		types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("update image: %v", err)
	}
	return v1Hash
}

// analysisRunPhases returns the phases of the AnalysisRuns the controller created for the Rollout.
func analysisRunPhases(t *testing.T, rolloutName string) []string {
	t.Helper()
	list, err := dyn.Resource(runGVR).Namespace(namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var phases []string
	for _, run := range list.Items {
		for _, owner := range run.GetOwnerReferences() {
			if owner.Kind == "Rollout" && owner.Name == rolloutName {
				phase, _, _ := unstructured.NestedString(run.Object, "status", "phase")
				phases = append(phases, phase)
			}
		}
	}
	return phases
}

// TestCanaryPromoted: v2 goes through setWeight 50 -> pause -> a passing analysis and becomes stable.
func TestCanaryPromoted(t *testing.T) {
	create(t, templateGVR, template("healthy", healthEndpoint(t, "ok")))
	v1 := deployV1ThenV2(t, "promoted", "healthy")
	status := waitRollout(t, "promoted", "v2 promoted", func(s map[string]any) bool {
		return healthyAt(s) && str(s, "stableRS") != v1
	})
	if got := str(status, "currentStepIndex"); got != "3" {
		t.Fatalf("currentStepIndex %s, want 3 (all steps done)", got)
	}
	if phases := analysisRunPhases(t, "promoted"); len(phases) != 1 || phases[0] != "Successful" {
		t.Fatalf("analysis runs of the rollout: %v, want one Successful", phases)
	}
}

// TestCanaryAborted: a failing analysis aborts the canary and the stable version stays v1.
func TestCanaryAborted(t *testing.T) {
	create(t, templateGVR, template("degraded", healthEndpoint(t, "degraded")))
	v1 := deployV1ThenV2(t, "aborted", "degraded")
	status := waitRollout(t, "aborted", "abort", func(s map[string]any) bool {
		return str(s, "abort") == "true" && str(s, "phase") == "Degraded"
	})
	if str(status, "stableRS") != v1 {
		t.Fatalf("stableRS changed to %s after a failed analysis (v1 was %s)", str(status, "stableRS"), v1)
	}
	if phases := analysisRunPhases(t, "aborted"); len(phases) != 1 || phases[0] != "Failed" {
		t.Fatalf("analysis runs of the rollout: %v, want one Failed", phases)
	}
}
