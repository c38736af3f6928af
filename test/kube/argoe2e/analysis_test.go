//go:build argoe2e

package argoe2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	analysisutil "github.com/argoproj/argo-rollouts/utils/analysis"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"sandcanary/test/kube/kubeenv"
	"sandcanary/test/kube/saasfake"
)

// md is the Measurement.Metadata key the plugin uses for name.
func md(name string) string { return "sandcanary." + name }

// rolloutName and rolloutUID stand for the Rollout that owns the runs; the plugin reads the Rollout's
// name from the owner reference (the real Rollout of rollouts/ runs on the one-node cluster: make test-node-canary).
const rolloutName = "sandcanary-proxy-runs"

var rolloutUID = types.UID("6f0e4c1a-5c2b-4a53-9f3e-" + strconv.FormatInt(time.Now().UnixNano()%1e12, 10))

// smallBench is the only change the tests make to our templates: fewer samples and faster polling, so
// the suite fits in a few minutes on a busy 2-core machine. It returns the metrics with it applied.
func smallBench(t *testing.T, metrics []v1alpha1.Metric) []v1alpha1.Metric {
	return smallBenchWith(t, metrics, nil)
}

// smallBenchWith is smallBench that also lets a test change the plugin config further.
func smallBenchWith(t *testing.T, metrics []v1alpha1.Metric, mutate func(map[string]any)) []v1alpha1.Metric {
	t.Helper()
	out := make([]v1alpha1.Metric, len(metrics))
	for i, m := range metrics {
		m = *m.DeepCopy()
		raw, ok := m.Provider.Plugin[pluginName]
		if !ok {
			t.Fatalf("metric %s has no %s plugin config", m.Name, pluginName)
		}
		var cfg map[string]any
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatal(err)
		}
		cfg["samples"], cfg["pauseMs"], cfg["pollSeconds"] = 5, 100, 2
		if mutate != nil {
			mutate(cfg)
		}
		small, err := json.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		m.Provider.Plugin[pluginName] = small
		out[i] = m
	}
	return out
}

// newRun builds an AnalysisRun from our applied template exactly as the Rollout controller does for an
// analysis step (utils/analysis.NewAnalysisRunFromTemplates: metrics copied, the step's args merged over
// the template's defaults, owner reference to the Rollout), then creates it.
func newRun(t *testing.T, name, template string, cluster bool, canaryDataURL, canaryHash string, extra map[string]string) {
	t.Helper()
	newRunWith(t, name, template, cluster, canaryDataURL, canaryHash, extra, nil)
}

// newRunWith is newRun with a change to the template's plugin config (see smallBenchWith).
func newRunWith(t *testing.T, name, template string, cluster bool, canaryDataURL, canaryHash string, extra map[string]string, mutate func(map[string]any)) {
	t.Helper()
	ctx := context.Background()
	var templates []*v1alpha1.AnalysisTemplate
	var clusterTemplates []*v1alpha1.ClusterAnalysisTemplate
	if cluster {
		ct, err := argo.ArgoprojV1alpha1().ClusterAnalysisTemplates().Get(ctx, template, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ct.Spec.Metrics = smallBenchWith(t, ct.Spec.Metrics, mutate)
		clusterTemplates = append(clusterTemplates, ct)
	} else {
		at, err := argo.ArgoprojV1alpha1().AnalysisTemplates(namespace).Get(ctx, template, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		at.Spec.Metrics = smallBenchWith(t, at.Spec.Metrics, mutate)
		templates = append(templates, at)
	}
	values := map[string]string{
		"stable-data-url": stableData, "stable-admin-url": stableAdmin,
		"canary-data-url": canaryDataURL, "canary-admin-url": canaryAdmin,
		"page-url": pageURL, "canary-hash": canaryHash, "stable-hash": "stable-v1",
		"github-owner": ghOwner, "github-repo": ghRepo, "github-api-url": githubURL,
	}
	for k, v := range extra {
		values[k] = v
	}
	var args []v1alpha1.Argument
	for k, v := range values {
		args = append(args, v1alpha1.Argument{Name: k, Value: &v})
	}
	labels := map[string]string{"rollouts-pod-template-hash": canaryHash, "rollout-type": "Step", "step-index": "2"}
	run, err := analysisutil.NewAnalysisRunFromTemplates(templates, clusterTemplates, args, nil, nil, labels, nil, name, "", namespace)
	if err != nil {
		t.Fatalf("NewAnalysisRunFromTemplates: %v", err)
	}
	isController := true
	run.OwnerReferences = []metav1.OwnerReference{{APIVersion: "argoproj.io/v1alpha1", Kind: "Rollout",
		Name: rolloutName, UID: rolloutUID, Controller: &isController, BlockOwnerDeletion: &isController}}
	if _, err := argo.ArgoprojV1alpha1().AnalysisRuns(namespace).Create(ctx, run, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create AnalysisRun %s: %v", name, err)
	}
}

func getRun(t *testing.T, name string) *v1alpha1.AnalysisRun {
	t.Helper()
	run, err := argo.ArgoprojV1alpha1().AnalysisRuns(namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return run
}

// waitDone polls the AnalysisRun until the controller gives it a completed phase.
func waitDone(t *testing.T, name string) *v1alpha1.AnalysisRun {
	t.Helper()
	return waitDoneObserving(t, name, nil)
}

// waitDoneObserving is waitDone that also shows every status it polls to observe.
func waitDoneObserving(t *testing.T, name string, observe func(*v1alpha1.AnalysisRun)) *v1alpha1.AnalysisRun {
	t.Helper()
	var last *v1alpha1.AnalysisRun
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, 8*time.Minute, true,
		func(ctx context.Context) (bool, error) {
			run, err := argo.ArgoprojV1alpha1().AnalysisRuns(namespace).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			last = run
			if observe != nil {
				observe(run)
			}
			return run.Status.Phase.Completed(), nil
		})
	if err != nil {
		t.Fatalf("AnalysisRun %s did not complete: %v; status %s", name, err, statusJSON(last))
	}
	t.Logf("%s: %s", name, statusJSON(last))
	return last
}

func statusJSON(run *v1alpha1.AnalysisRun) string {
	if run == nil {
		return "<none>"
	}
	b, _ := json.Marshal(run.Status)
	return string(b)
}

// verdict returns the single metric's last measurement, failing unless there is exactly one metric.
func verdict(t *testing.T, run *v1alpha1.AnalysisRun) v1alpha1.Measurement {
	t.Helper()
	if len(run.Status.MetricResults) != 1 || len(run.Status.MetricResults[0].Measurements) == 0 {
		t.Fatalf("want one metric with measurements: %s", statusJSON(run))
	}
	ms := run.Status.MetricResults[0].Measurements
	return ms[len(ms)-1]
}

func expectPhase(t *testing.T, run *v1alpha1.AnalysisRun, want v1alpha1.AnalysisPhase) v1alpha1.Measurement {
	t.Helper()
	if run.Status.Phase != want {
		t.Fatalf("AnalysisRun %s: phase %s, want %s; status %s", run.Name, run.Status.Phase, want, statusJSON(run))
	}
	m := verdict(t, run)
	if m.Phase != want {
		t.Fatalf("measurement phase %s, want %s", m.Phase, want)
	}
	if _, err := strconv.ParseFloat(m.Value, 64); err != nil {
		t.Fatalf("Value %q is not the 0-100 score", m.Value)
	}
	secrets := []string{os.Getenv("SANDCANARY_ADMIN_TOKEN"), os.Getenv("SANDCANARY_IDENTITY_TOKEN"),
		os.Getenv("GITHUB_TOKEN"), os.Getenv("SANDCANARY_LLM_API_KEY")}
	raw, _ := json.Marshal(run.Status)
	for _, s := range secrets {
		if bytes.Contains(raw, []byte(s)) {
			t.Fatalf("a secret reached the AnalysisRun status")
		}
	}
	return m
}

// expectEvent checks that the plugin recorded the verdict's Kubernetes Event on the AnalysisRun: the
// measurement's Metadata says so, and `kubectl describe analysisrun` lists it with its type, reason,
// source and message (which must contain every string in message).
func expectEvent(t *testing.T, run *v1alpha1.AnalysisRun, m v1alpha1.Measurement, typ, reason string, message ...string) {
	t.Helper()
	if got, want := m.Metadata[md("event")], "recorded "+typ+" "+reason; got != want {
		t.Fatalf("Metadata event %q, want %q; metadata %v", got, want, m.Metadata)
	}
	out, err := env.Kubectl(context.Background(), nil, "describe", "analysisrun", "-n", namespace, run.Name)
	if err != nil {
		t.Fatalf("kubectl describe analysisrun %s: %v\n%s", run.Name, err, out)
	}
	_, events, ok := strings.Cut(out, "\nEvents:")
	if !ok {
		t.Fatalf("kubectl describe analysisrun %s shows no Events:\n%s", run.Name, out)
	}
	var line string
	for _, l := range strings.Split(events, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == typ && f[1] == reason {
			line = l
		}
	}
	if line == "" || !strings.Contains(line, "sandcanary-plugin") {
		t.Fatalf("no %s %s event from sandcanary-plugin in kubectl describe:%s", typ, reason, events)
	}
	for _, want := range message {
		if !strings.Contains(line, want) {
			t.Fatalf("event %q lacks %q", line, want)
		}
	}
	t.Logf("kubectl describe analysisrun %s: %s", run.Name, strings.TrimSpace(line))
}

// fingerprints groups the fake GitHub's issues by their sandcanary fingerprint label.
func fingerprints(t *testing.T) map[string][]saasfake.IssueView {
	t.Helper()
	out := map[string][]saasfake.IssueView{}
	for _, i := range github.Snapshot() {
		var fp string
		for _, l := range i.Labels {
			if strings.HasPrefix(l, "sandcanary:fp-") {
				fp = l
			}
		}
		if fp == "" {
			t.Fatalf("issue #%d has no fingerprint label: %v", i.Number, i.Labels)
		}
		out[fp] = append(out[fp], i)
	}
	for fp, issues := range out {
		if len(issues) != 1 {
			t.Fatalf("fingerprint %s has %d issues, want exactly one (dedup)", fp, len(issues))
		}
	}
	return out
}

// TestHealthyCanaryFromClusterTemplate: our ClusterAnalysisTemplate (statistical judge) passes a canary
// that is as fast as stable; nothing is filed.
func TestHealthyCanaryFromClusterTemplate(t *testing.T) {
	newRun(t, "healthy-statistical", "sandcanary-statistical", true, canaryData, "canary-healthy", nil)
	run := waitDone(t, "healthy-statistical")
	m := expectPhase(t, run, v1alpha1.AnalysisPhaseSuccessful)
	if m.Metadata[md("judge")] != "statistical" {
		t.Fatalf("judge %q, want statistical; metadata %v", m.Metadata[md("judge")], m.Metadata)
	}
	expectEvent(t, run, m, "Normal", "SandcanaryPromote", "statistical")
	if got := m.Metadata[md("recovery")]; got != "no open issue of an earlier revision" {
		t.Fatalf("Metadata recovery %q on a Rollout without issues", got)
	}
	if n := len(github.Snapshot()); n != 0 {
		t.Fatalf("%d issues filed for a healthy canary", n)
	}
}

// TestRegressedCanaryFailsAndFilesOneIssue: the canary behind a delaying relay fails our statistical
// template, and exactly one issue lands on (fake) GitHub with the fingerprint label.
func TestRegressedCanaryFailsAndFilesOneIssue(t *testing.T) {
	newRun(t, "regressed-statistical", "sandcanary-statistical", false, regressedData, "canary-slow", nil)
	run := waitDone(t, "regressed-statistical")
	m := expectPhase(t, run, v1alpha1.AnalysisPhaseFailed)
	expectEvent(t, run, m, "Warning", "SandcanaryRegression", "GitHub issue: created ", "/issues/1")
	issues := github.Snapshot()
	if len(issues) != 1 {
		t.Fatalf("%d issues filed, want 1: %+v\nrequests %v", len(issues), issues, github.RequestLog())
	}
	for _, want := range []string{"performance", "canary-regression"} {
		if !slices.Contains(issues[0].Labels, want) {
			t.Fatalf("issue labels %v lack the template's %q", issues[0].Labels, want)
		}
	}
	if !strings.Contains(issues[0].Title, rolloutName) {
		t.Fatalf("issue title %q does not name the Rollout %s (from the run's owner reference)", issues[0].Title, rolloutName)
	}
	if !strings.Contains(issues[0].Body, "regressed-statistical") || !strings.Contains(issues[0].Body, "canary-slow") {
		t.Fatalf("issue body does not name the AnalysisRun and the canary revision:\n%s", issues[0].Body)
	}
	if !strings.HasPrefix(m.Metadata[md("issue")], "created ") || !strings.HasSuffix(m.Metadata[md("issue")], "/issues/1") {
		t.Fatalf("Metadata issue %q does not name the created issue #1", m.Metadata[md("issue")])
	}
	fingerprints(t)
	// The issue shows where the slowest canary sample spent its time: the relay holds every new
	// connection, so the step up to the proxy's 101 is the one that grew. The body escapes Markdown
	// punctuation, the apostrophe too.
	for _, want := range []string{"### Where the slowest canary sample spent its time", "```mermaid\ngantt",
		"| **connect: to the proxy\\'s 101** |", "(largest)", "| goto: request to first byte |"} {
		if !strings.Contains(issues[0].Body, want) {
			t.Fatalf("issue body lacks %q:\n%s", want, issues[0].Body)
		}
	}
}

// pluginPIDs lists the processes running the installed plugin binary (started by our controller).
func pluginPIDs(t *testing.T) []int {
	t.Helper()
	pids, err := kubeenv.PIDsRunning(installedPlugin)
	if err != nil {
		t.Fatal(err)
	}
	return pids
}

// TestPluginKilledMidAnalysis: the plugin is SIGKILLed while its bench runs; the controller starts it
// again, the new process picks the measurement up from its Metadata handle, and the run still reaches a
// verdict (Failed, the canary is slow). The report of this second failing run is deduplicated: no
// second issue for the same fingerprint.
func TestPluginKilledMidAnalysis(t *testing.T) {
	before := len(github.Snapshot())
	newRun(t, "killed-statistical", "sandcanary-statistical", false, regressedData, "canary-slow", nil)
	// Wait until Run has answered (Running, with the job handle) and the bench has been going a while.
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, 2*time.Minute, true,
		func(ctx context.Context) (bool, error) {
			run, err := argo.ArgoprojV1alpha1().AnalysisRuns(namespace).Get(ctx, "killed-statistical", metav1.GetOptions{})
			if err != nil || len(run.Status.MetricResults) == 0 || len(run.Status.MetricResults[0].Measurements) == 0 {
				return false, err
			}
			m := run.Status.MetricResults[0].Measurements[0]
			return m.Phase == v1alpha1.AnalysisPhaseRunning && m.Metadata[md("handle")] != "" &&
				strings.Contains(m.Message, "running for"), nil
		})
	if err != nil {
		t.Fatalf("the measurement never showed a running bench: %v; %s", err, statusJSON(getRun(t, "killed-statistical")))
	}
	time.Sleep(3 * time.Second)
	killed := pluginPIDs(t)
	if len(killed) == 0 {
		t.Fatal("no plugin process while the analysis runs")
	}
	for _, pid := range killed {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill plugin %d: %v", pid, err)
		}
	}
	t.Logf("SIGKILLed plugin %v mid-bench", killed)

	restarted := false
	run := waitDoneObserving(t, "killed-statistical", func(r *v1alpha1.AnalysisRun) {
		for _, res := range r.Status.MetricResults {
			for _, m := range res.Measurements {
				restarted = restarted || strings.Contains(m.Message, "plugin restarted")
			}
		}
	})
	if !restarted {
		t.Fatal("never saw the restarted plugin pick the measurement up (message \"plugin restarted; job started again\")")
	}
	m := expectPhase(t, run, v1alpha1.AnalysisPhaseFailed)
	after := pluginPIDs(t)
	if len(after) == 0 {
		t.Fatal("the controller did not start the plugin again")
	}
	for _, old := range killed {
		for _, pid := range after {
			if pid == old {
				t.Fatalf("plugin pid %d survived SIGKILL", pid)
			}
		}
	}
	t.Logf("plugin pids after the restart %v; issue report: %q", after, m.Metadata[md("issue")])
	// Same Rollout, same canary revision: the same fingerprint unless the judge failed other metrics.
	fps := fingerprints(t)
	issues := github.Snapshot()
	switch {
	case len(issues) == before:
		if issues[0].Comments < 1 || !strings.Contains(m.Metadata[md("issue")], "comment") {
			t.Fatalf("second failing run neither filed nor commented: issues %+v, metadata %q", issues, m.Metadata[md("issue")])
		}
	case len(issues) == before+1 && len(fps) == before+1:
		t.Logf("the judge failed a different set of metrics this time, so a new fingerprint and issue: %v", m.Metadata)
	default:
		t.Fatalf("%d issues after the second failing run (had %d): %+v", len(issues), before, issues)
	}
}

// TestThresholdTemplate: our threshold template fails the slow canary on its absolute limits.
func TestThresholdTemplate(t *testing.T) {
	newRun(t, "regressed-threshold", "sandcanary-threshold", false, regressedData, "canary-slow", nil)
	m := expectPhase(t, waitDone(t, "regressed-threshold"), v1alpha1.AnalysisPhaseFailed)
	if m.Metadata[md("judge")] != "threshold" {
		t.Fatalf("judge %q, want threshold; metadata %v", m.Metadata[md("judge")], m.Metadata)
	}
	fingerprints(t)
}

// TestRecoveryClosesTheIssues: a later analysis of the same Rollout passes on a newer canary revision
// (onRecovery close): every open issue of the slow revision gets one comment naming the revision with the
// new table and is closed; the verdict stays Successful and its event is Normal.
func TestRecoveryClosesTheIssues(t *testing.T) {
	var open []saasfake.IssueView
	filed := len(github.Snapshot())
	for _, i := range github.Snapshot() {
		if i.State == "open" {
			open = append(open, i)
		}
	}
	if len(open) == 0 {
		t.Fatal("no open issue to recover (the regression tests run first)")
	}
	closeOnRecovery := func(cfg map[string]any) {
		gh, ok := cfg["github"].(map[string]any)
		if !ok {
			t.Fatalf("the template has no github config: %v", cfg)
		}
		gh["onRecovery"] = "close"
	}
	newRunWith(t, "recovered-statistical", "sandcanary-statistical", false, canaryData, "canary-fixed", nil, closeOnRecovery)
	run := waitDone(t, "recovered-statistical")
	m := expectPhase(t, run, v1alpha1.AnalysisPhaseSuccessful)
	expectEvent(t, run, m, "Normal", "SandcanaryPromote")
	if got := m.Metadata[md("recovery")]; !strings.HasPrefix(got, "closed https://github.com/") {
		t.Fatalf("Metadata recovery %q, want the closed issues", got)
	}
	after := map[int]saasfake.IssueView{}
	for _, i := range github.Snapshot() {
		after[i.Number] = i
	}
	for _, before := range open {
		i := after[before.Number]
		if i.State != "closed" {
			t.Fatalf("issue #%d is %s after the recovery", i.Number, i.State)
		}
		if len(i.CommentBodies) != before.Comments+1 {
			t.Fatalf("issue #%d: %d comments, want exactly one more than %d", i.Number, len(i.CommentBodies), before.Comments)
		}
		last := i.CommentBodies[len(i.CommentBodies)-1]
		for _, want := range []string{"Recovered: canary revision canary-fixed passed in AnalysisRun recovered-statistical",
			"| Canary revision | canary-fixed |", "Canary against stable"} {
			if !strings.Contains(last, want) {
				t.Fatalf("recovery comment on #%d lacks %q:\n%s", i.Number, want, last)
			}
		}
	}
	if len(after) != filed {
		t.Fatalf("the recovery filed issues: %d before, %d after", filed, len(after))
	}
}

// TestLLMTemplate: our LLM template asks the (fake) OpenAI-compatible endpoint, with the key from the
// environment variable it names and a strict json_schema, and its promote answer passes a healthy canary.
func TestLLMTemplate(t *testing.T) {
	newRun(t, "healthy-llm", "sandcanary-llm", false, canaryData, "canary-healthy", map[string]string{
		"llm-base-url": openaiURL, "llm-model": "e2e-model",
	})
	m := expectPhase(t, waitDone(t, "healthy-llm"), v1alpha1.AnalysisPhaseSuccessful)
	calls, bad := openai.Stats()
	if calls < 1 || len(bad) > 0 {
		t.Fatalf("LLM endpoint: %d calls, problems %v", calls, bad)
	}
	if m.Metadata[md("judge")] != "llm" {
		t.Fatalf("judge %q, want llm (no fallback); metadata %v", m.Metadata[md("judge")], m.Metadata)
	}
}

// TestLLMRejectionPausesForAHuman: in conservative mode a model that rejects a canary the statistics pass
// makes the verdict Inconclusive, and with the template's inconclusiveLimit 0 the run is Inconclusive
// (which pauses a Rollout) and nothing is filed.
func TestLLMRejectionPausesForAHuman(t *testing.T) {
	openai.SetAnswer(`{"promote":false,"confidence":95,"reasons":["cold starts look slower in the tail"]}`)
	t.Cleanup(func() {
		openai.SetAnswer(`{"promote":true,"confidence":92,"reasons":["canary latency matches stable"]}`)
	})
	issues := len(github.Snapshot())
	newRun(t, "rejected-llm", "sandcanary-llm", false, canaryData, "canary-healthy", map[string]string{
		"llm-base-url": openaiURL, "llm-model": "e2e-model",
	})
	m := expectPhase(t, waitDone(t, "rejected-llm"), v1alpha1.AnalysisPhaseInconclusive)
	if m.Metadata[md("judge")] != "llm" || m.Metadata[md("llm_promote")] != "false" {
		t.Fatalf("want the llm judge's rejection; metadata %v", m.Metadata)
	}
	if n := len(github.Snapshot()); n != issues {
		t.Fatalf("an Inconclusive verdict filed an issue (%d -> %d)", issues, n)
	}
}

// TestUnreachableCanaryEndsInError: a canary whose admin port refuses connections gives Error
// measurements within seconds (no bench), retried by the controller, and after the template's
// consecutiveErrorLimit the run ends in Error instead of hanging.
func TestUnreachableCanaryEndsInError(t *testing.T) {
	newRun(t, "unreachable", "sandcanary-threshold", false, canaryData, "canary-gone", map[string]string{
		"canary-admin-url": "http://127.0.0.1:1",
	})
	run := waitDone(t, "unreachable")
	if run.Status.Phase != v1alpha1.AnalysisPhaseError {
		t.Fatalf("phase %s, want Error; status %s", run.Status.Phase, statusJSON(run))
	}
	res := run.Status.MetricResults[0]
	if res.Error != 3 || len(res.Measurements) != 3 {
		t.Fatalf("want 3 Error measurements (consecutiveErrorLimit 2), got %d errors, %d measurements", res.Error, len(res.Measurements))
	}
	for _, m := range res.Measurements {
		if m.Phase != v1alpha1.AnalysisPhaseError || !strings.Contains(m.Message, "127.0.0.1:1") {
			t.Fatalf("measurement %s %q does not name the unreachable admin URL", m.Phase, m.Message)
		}
	}
}
