//go:build argoe2e

package argoe2e

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"sandcanary/test/kube/kubeenv"
	"sandcanary/test/kube/nodesim"
)

var (
	rolloutGVR = kubeenv.RolloutGVR
	serviceGVR = schema.GroupVersionResource{Version: "v1", Resource: "services"}
)

// readManifests parses the files a kustomization.yaml lists, in its order.
func readManifests(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	var k struct {
		Resources []string `json:"resources"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &k); err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	for _, f := range k.Resources {
		raw, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
		for {
			doc, err := docs.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			obj := map[string]any{}
			if err := yaml.Unmarshal(doc, &obj); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if len(obj) > 0 {
				objs = append(objs, &unstructured.Unstructured{Object: obj})
			}
		}
	}
	return objs
}

// benchArgs points every analysis of the Rollout (background and steps) at the local proxies, the page
// server and the fake GitHub, with canaryDataURL as the canary's data port. This, the namespace, the
// pause durations and the image tag are what the test copy changes in rollouts/rollout.yaml.
func benchArgs(t *testing.T, ro *unstructured.Unstructured, canaryDataURL string) {
	t.Helper()
	values := map[string]string{
		"stable-data-url": stableData, "stable-admin-url": stableAdmin,
		"canary-data-url": canaryDataURL, "canary-admin-url": canaryAdmin,
		"page-url": pageURL, "github-owner": ghOwner, "github-repo": ghRepo,
	}
	rewrite := func(analysis map[string]any) {
		args, _ := analysis["args"].([]any)
		seen := map[string]bool{}
		for _, a := range args {
			arg := a.(map[string]any)
			name := arg["name"].(string)
			seen[name] = true
			if v, ok := values[name]; ok {
				arg["value"] = v
			}
		}
		for name := range values {
			if !seen[name] {
				t.Fatalf("the Rollout's analysis does not pass arg %s", name)
			}
		}
		analysis["args"] = append(args, map[string]any{"name": "github-api-url", "value": githubURL})
	}
	canary, _, _ := unstructured.NestedMap(ro.Object, "spec", "strategy", "canary")
	rewrite(canary["analysis"].(map[string]any))
	steps := canary["steps"].([]any)
	analyses := 0
	for _, s := range steps {
		step := s.(map[string]any)
		if a, ok := step["analysis"].(map[string]any); ok {
			rewrite(a)
			analyses++
		}
		if p, ok := step["pause"].(map[string]any); ok && p["duration"] != nil {
			p["duration"] = "3s"
		}
	}
	if analyses != 1 {
		t.Fatalf("want one inline analysis step, found %d", analyses)
	}
	if err := unstructured.SetNestedMap(ro.Object, canary, "spec", "strategy", "canary"); err != nil {
		t.Fatal(err)
	}
}

func rolloutStatus(t *testing.T, name string) map[string]any {
	t.Helper()
	got, err := dyn.Resource(rolloutGVR).Namespace(namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	status, _, _ := unstructured.NestedMap(got.Object, "status")
	return status
}

func waitRollout(t *testing.T, name, what string, timeout time.Duration, done func(map[string]any) bool) map[string]any {
	t.Helper()
	status, err := kubeenv.WaitRollout(dyn, namespace, name, 500*time.Millisecond, timeout, done)
	if err != nil {
		t.Fatalf("rollout %s: %s not reached: %v; status %v", name, what, err, status)
	}
	return status
}

func str(m map[string]any, path ...string) string { return kubeenv.Field(m, path...) }

func healthyAt(status map[string]any) bool { return kubeenv.RolloutHealthy(status, 2) }

// runsOf lists the AnalysisRuns the controller created for the Rollout's revision hash, by rollout-type
// label (Step for inline steps, Background).
func runsOf(t *testing.T, rollout, podHash string) map[string][]v1alpha1.AnalysisRun {
	t.Helper()
	list, err := argo.ArgoprojV1alpha1().AnalysisRuns(namespace).List(context.Background(),
		metav1.ListOptions{LabelSelector: "rollouts-pod-template-hash=" + podHash})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]v1alpha1.AnalysisRun{}
	for _, r := range list.Items {
		if c := metav1.GetControllerOf(&r); c != nil && c.Kind == "Rollout" && c.Name == rollout {
			out[r.Labels["rollout-type"]] = append(out[r.Labels["rollout-type"]], r)
		}
	}
	return out
}

// useSmallBench stores our two templates the Rollout names with smallBench applied (the same change the
// AnalysisRun tests make in memory), since here the controller creates the runs itself.
func useSmallBench(t *testing.T, names ...string) {
	t.Helper()
	api := argo.ArgoprojV1alpha1().AnalysisTemplates(namespace)
	for _, name := range names {
		at, err := api.Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		at.Spec.Metrics = smallBench(t, at.Spec.Metrics)
		if _, err := api.Update(context.Background(), at, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFullRollout drives rollouts/ (a test copy: namespace, args, pauses, image tag) through its steps with
// real ReplicaSets and simulated pods: v1 becomes Healthy; v2 with a healthy canary passes the inline
// statistical bench and is promoted; v3 with a slow canary fails it, the Rollout aborts (Degraded) and
// stable stays v2.
func TestFullRollout(t *testing.T) {
	// Pods: ReplicaSets, GC and EndpointSlices from kube-controller-manager, scheduling and "running" (no
	// container runs) from nodesim. Started only here: the GC would remove the AnalysisRuns the tests
	// above own by a stand-in Rollout UID.
	if err := env.StartControllerManager(); err != nil {
		t.Fatalf("start kube-controller-manager: %v", err)
	}
	kube, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	simCtx, simCancel := context.WithCancel(context.Background())
	t.Cleanup(simCancel)
	if err := nodesim.New(kube, nodesim.Options{IPPrefix: "127.0.202."}).Run(simCtx); err != nil {
		t.Fatalf("node simulator: %v", err)
	}
	useSmallBench(t, "sandcanary-statistical", "sandcanary-threshold")
	var ro *unstructured.Unstructured
	for _, obj := range readManifests(t, filepath.Join(kubeenv.RepoRoot(), "rollouts")) {
		obj.SetNamespace(namespace)
		switch obj.GetKind() {
		case "Service":
			if _, err := dyn.Resource(serviceGVR).Namespace(namespace).Create(context.Background(), obj, metav1.CreateOptions{}); err != nil {
				t.Fatalf("create Service %s: %v", obj.GetName(), err)
			}
		case "Rollout":
			ro = obj
		default:
			t.Fatalf("unexpected %s in rollouts/", obj.GetKind())
		}
	}
	if ro == nil {
		t.Fatal("no Rollout in rollouts/")
	}
	name := ro.GetName()
	benchArgs(t, ro, canaryData)
	if _, err := dyn.Resource(rolloutGVR).Namespace(namespace).Create(context.Background(), ro, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create Rollout: %v", err)
	}
	v1 := str(waitRollout(t, name, "v1 Healthy", 3*time.Minute, healthyAt), "stableRS")

	// v2: healthy canary.
	update(t, name, "v2", canaryData)
	status := waitRollout(t, name, "v2 promoted", 6*time.Minute, func(s map[string]any) bool {
		return (healthyAt(s) && str(s, "stableRS") != v1) || str(s, "abort") == "true"
	})
	if str(status, "abort") == "true" {
		t.Fatalf("v2 (healthy canary) was aborted: %v", status)
	}
	v2 := str(status, "stableRS")
	runs := runsOf(t, name, v2)
	if len(runs["Step"]) != 1 || runs["Step"][0].Status.Phase != v1alpha1.AnalysisPhaseSuccessful {
		t.Fatalf("v2 inline analysis runs: %+v", phases(runs["Step"]))
	}
	t.Logf("v2 promoted; inline %v, background %v", phases(runs["Step"]), phases(runs["Background"]))
	for _, r := range runs["Background"] {
		if slices.Contains([]v1alpha1.AnalysisPhase{v1alpha1.AnalysisPhaseFailed, v1alpha1.AnalysisPhaseError}, r.Status.Phase) {
			t.Fatalf("background analysis %s: %s", r.Name, statusJSON(&r))
		}
	}

	// v3: the canary is slow.
	update(t, name, "v3", regressedData)
	status = waitRollout(t, name, "v3 aborted", 6*time.Minute, func(s map[string]any) bool {
		return str(s, "abort") == "true" && str(s, "phase") == "Degraded"
	})
	if str(status, "stableRS") != v2 {
		t.Fatalf("stableRS %s after the failed analysis, want v2 %s", str(status, "stableRS"), v2)
	}
	v3 := str(status, "currentPodHash")
	runs = runsOf(t, name, v3)
	if len(runs["Step"]) != 1 || runs["Step"][0].Status.Phase != v1alpha1.AnalysisPhaseFailed {
		t.Fatalf("v3 inline analysis runs: %+v", phases(runs["Step"]))
	}
	found := false
	for _, i := range github.Snapshot() {
		found = found || strings.Contains(i.Title, v3)
	}
	if !found {
		t.Fatalf("no GitHub issue names the aborted revision %s: %+v", v3, github.Snapshot())
	}
	fingerprints(t)
	t.Logf("v3 aborted (Degraded), stable stays %s", v2)
}

func phases(runs []v1alpha1.AnalysisRun) []string {
	var out []string
	for _, r := range runs {
		out = append(out, r.Name+"="+string(r.Status.Phase))
	}
	return out
}

// update sets the image tag and the canary's data URL in every analysis of the Rollout.
func update(t *testing.T, name, tag, canaryDataURL string) {
	t.Helper()
	api := dyn.Resource(rolloutGVR).Namespace(namespace)
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true,
		func(ctx context.Context) (bool, error) {
			ro, err := api.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			containers, _, _ := unstructured.NestedSlice(ro.Object, "spec", "template", "spec", "containers")
			c := containers[0].(map[string]any)
			image := c["image"].(string)
			c["image"] = image[:strings.LastIndex(image, ":")+1] + tag
			if err := unstructured.SetNestedSlice(ro.Object, containers, "spec", "template", "spec", "containers"); err != nil {
				return false, err
			}
			setCanaryData(ro, canaryDataURL)
			_, err = api.Update(ctx, ro, metav1.UpdateOptions{})
			return err == nil, nil // retry on conflicts with the controller's writes
		})
	if err != nil {
		t.Fatalf("update Rollout to %s: %v", tag, err)
	}
}

func setCanaryData(ro *unstructured.Unstructured, url string) {
	canary, _, _ := unstructured.NestedMap(ro.Object, "spec", "strategy", "canary")
	set := func(analysis map[string]any) {
		for _, a := range analysis["args"].([]any) {
			if arg := a.(map[string]any); arg["name"] == "canary-data-url" {
				arg["value"] = url
			}
		}
	}
	set(canary["analysis"].(map[string]any))
	for _, s := range canary["steps"].([]any) {
		if a, ok := s.(map[string]any)["analysis"].(map[string]any); ok {
			set(a)
		}
	}
	_ = unstructured.SetNestedMap(ro.Object, canary, "spec", "strategy", "canary")
}
