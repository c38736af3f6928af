//go:build argoe2e

package argoe2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	analysisutil "github.com/argoproj/argo-rollouts/utils/analysis"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// trustRun creates an AnalysisRun from our statistical template (or llm) with its plugin config changed
// by mutate and extra arguments, as a template author in the tests' namespace could write it.
func trustRun(t *testing.T, name, template string, mutate func(cfg map[string]any), values map[string]string, extra ...v1alpha1.Argument) {
	t.Helper()
	ctx := context.Background()
	at, err := argo.ArgoprojV1alpha1().AnalysisTemplates(namespace).Get(ctx, template, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	at.Spec.Metrics = smallBench(t, at.Spec.Metrics)
	var cfg map[string]any
	if err := json.Unmarshal(at.Spec.Metrics[0].Provider.Plugin[pluginName], &cfg); err != nil {
		t.Fatal(err)
	}
	mutate(cfg)
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	at.Spec.Metrics[0].Provider.Plugin[pluginName] = raw
	// The template declares the extra arguments, as an author would.
	at.Spec.Args = append(at.Spec.Args, extra...)
	all := map[string]string{
		"stable-data-url": stableData, "stable-admin-url": stableAdmin,
		"canary-data-url": canaryData, "canary-admin-url": canaryAdmin,
		"page-url": pageURL, "canary-hash": "trust-" + name, "stable-hash": "stable-v1",
		"github-owner": ghOwner, "github-repo": ghRepo, "github-api-url": githubURL,
	}
	for k, v := range values {
		all[k] = v
	}
	var args []v1alpha1.Argument
	for k, v := range all {
		args = append(args, v1alpha1.Argument{Name: k, Value: &v})
	}
	run, err := analysisutil.NewAnalysisRunFromTemplates([]*v1alpha1.AnalysisTemplate{at}, nil, args, nil, nil,
		map[string]string{"rollout-type": "Step"}, nil, name, "", namespace)
	if err != nil {
		t.Fatalf("NewAnalysisRunFromTemplates: %v", err)
	}
	if _, err := argo.ArgoprojV1alpha1().AnalysisRuns(namespace).Create(ctx, run, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create AnalysisRun %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = argo.ArgoprojV1alpha1().AnalysisRuns(namespace).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

// firstMeasurement waits for the run's first completed measurement.
func firstMeasurement(t *testing.T, name string) v1alpha1.Measurement {
	t.Helper()
	var got *v1alpha1.Measurement
	var last *v1alpha1.AnalysisRun
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, 3*time.Minute, true,
		func(ctx context.Context) (bool, error) {
			run, err := argo.ArgoprojV1alpha1().AnalysisRuns(namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			last = run
			for _, r := range run.Status.MetricResults {
				for _, m := range r.Measurements {
					if m.Phase.Completed() {
						got = &m
						return true, nil
					}
				}
			}
			return false, nil
		})
	if err != nil {
		t.Fatalf("%s: no completed measurement: %v; status %s", name, err, statusJSON(last))
	}
	return *got
}

// TestTenantSecrets: a template in the tests' namespace cannot read another namespace's Secret, the
// controller's service-account token, its files or its environment, nor send the controller's GitHub
// token or LLM key to a host of its choosing; each attempt is an Error measurement naming the rule, and
// nothing reaches the attacker's host. An argument with valueFrom.secretKeyRef (resolved by Argo) works.
func TestTenantSecrets(t *testing.T) {
	var stolen atomic.Int64
	attacker, stop, err := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	setToken := func(ref map[string]any) func(map[string]any) {
		return func(cfg map[string]any) { cfg["sessionApiToken"] = ref }
	}
	cases := []struct {
		name, template string
		mutate         func(map[string]any)
		values         map[string]string
		want           string
	}{
		{"other-namespace", "sandcanary-statistical",
			setToken(map[string]any{"secretKeyRef": map[string]any{"name": "team-b-only", "key": "token"}}),
			nil, "Secret team-b-only does not exist in namespace " + namespace},
		{"sa-token", "sandcanary-statistical",
			setToken(map[string]any{"file": "/var/run/secrets/kubernetes.io/serviceaccount/token"}),
			map[string]string{"canary-admin-url": attacker}, "service-account"},
		{"kubeconfig-file", "sandcanary-statistical",
			setToken(map[string]any{"file": env.Kubeconfig}),
			map[string]string{"canary-admin-url": attacker}, "SANDCANARY_SECRET_DIRS"},
		{"controller-env", "sandcanary-statistical",
			setToken(map[string]any{"env": "SANDCANARY_ADMIN_TOKEN"}),
			map[string]string{"canary-admin-url": attacker}, "SANDCANARY_SECRET_ENV"},
		{"github-token-to-proxy", "sandcanary-statistical",
			setToken(map[string]any{"env": "GITHUB_TOKEN"}),
			map[string]string{"canary-admin-url": attacker}, "SANDCANARY_PROXY_HOSTS"},
		{"github-redirect", "sandcanary-statistical", func(map[string]any) {},
			map[string]string{"github-api-url": attacker}, "SANDCANARY_GITHUB_API_URL"},
		{"llm-redirect", "sandcanary-llm", func(map[string]any) {},
			map[string]string{"llm-base-url": attacker + "/v1", "llm-model": "e2e-model"}, "SANDCANARY_LLM_BASE_URLS"},
	}
	for _, c := range cases {
		trustRun(t, "trust-"+c.name, c.template, c.mutate, c.values)
	}
	secrets := []string{os.Getenv("SANDCANARY_ADMIN_TOKEN"), os.Getenv("SANDCANARY_IDENTITY_TOKEN"),
		os.Getenv("GITHUB_TOKEN"), os.Getenv("SANDCANARY_LLM_API_KEY")}
	for _, c := range cases {
		m := firstMeasurement(t, "trust-"+c.name)
		t.Logf("%s: %s %q", c.name, m.Phase, m.Message)
		if m.Phase != v1alpha1.AnalysisPhaseError || !strings.Contains(m.Message, c.want) {
			t.Errorf("%s: want an Error naming %q, got %s %q", c.name, c.want, m.Phase, m.Message)
		}
		for _, s := range secrets {
			if strings.Contains(m.Message, s) {
				t.Errorf("%s: the message repeats a secret", c.name)
			}
		}
	}
	if n := stolen.Load(); n != 0 {
		t.Fatalf("the attacker's host received %d requests", n)
	}

	// The legitimate path Argo itself offers: an argument with valueFrom.secretKeyRef in the run's own
	// namespace, resolved by the controller and named by {arg: ...}, next to secretKeyRef (the template's).
	trustRun(t, "trust-arg", "sandcanary-statistical", func(cfg map[string]any) {
		cfg["identityToken"] = map[string]any{"arg": "identity-token"}
		delete(cfg, "github")
	}, nil, v1alpha1.Argument{Name: "identity-token", ValueFrom: &v1alpha1.ValueFrom{
		SecretKeyRef: &v1alpha1.SecretKeyRef{Name: "sandcanary-proxy-tokens", Key: "identity-token"}}})
	run := waitDone(t, "trust-arg")
	expectPhase(t, run, v1alpha1.AnalysisPhaseSuccessful)
	if n := stolen.Load(); n != 0 {
		t.Fatalf("the attacker's host received %d requests", n)
	}
}
