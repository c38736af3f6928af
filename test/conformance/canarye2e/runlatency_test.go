//go:build canarye2e && runlatency

// Run and Resume round-trip latency of the real sandcanary-plugin, driven by argo's own RPC client
// (metricproviders/plugin/rpc over go-plugin), while its bench job benches two real proxies with real
// Chromium sandboxes; the baseline, measured in the same run, is the same binary with the placeholder
// job (nothing but the protocol and the runner). Prints a Markdown table with ratios (bench / baseline).
// Run by `make bench-plugin-run-latency` (build tags canarye2e,runlatency: not part of make test).
package canarye2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	argorpc "github.com/argoproj/argo-rollouts/metricproviders/plugin/rpc"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"sandcanary.invalid/conformance/fixture"
)

// startPlugin launches the plugin binary with extra environment through go-plugin with argo's
// handshake and plugin map (what client.GetMetricPlugin does, minus the ConfigMap lookup).
func startPlugin(t *testing.T, bin string, env ...string) argorpc.MetricProviderPlugin {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	c := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: goplugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: "ARGO_ROLLOUTS_RPC_PLUGIN", MagicCookieValue: "metricprovider"},
		Plugins:         map[string]goplugin.Plugin{"RpcMetricProviderPlugin": &argorpc.RpcMetricProviderPlugin{}},
		Cmd:             cmd,
		Managed:         true,
		Logger:          hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Error, Output: os.Stderr}),
	})
	t.Cleanup(c.Kill)
	cp, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := cp.Dispense("RpcMetricProviderPlugin")
	if err != nil {
		t.Fatal(err)
	}
	p := raw.(argorpc.MetricProviderPlugin)
	if e := p.InitPlugin(); e.HasError() {
		t.Fatal(e.Error())
	}
	return p
}

type latencies struct{ run, resume []time.Duration }

func quantile(d []time.Duration, q float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(q*float64(len(s)-1))]
}

// poll calls Run (the same measurement slot again: idempotent, the job is not restarted) and
// Resume every `every` until `stop` says so, timing each round trip.
func poll(t *testing.T, p argorpc.MetricProviderPlugin, run *v1alpha1.AnalysisRun, metric v1alpha1.Metric,
	m v1alpha1.Measurement, every time.Duration, stop func(i int, m v1alpha1.Measurement) bool) (latencies, v1alpha1.Measurement) {
	var l latencies
	for i := 0; ; i++ {
		t0 := time.Now()
		again := p.Run(run, metric)
		l.run = append(l.run, time.Since(t0))
		if again.Phase != v1alpha1.AnalysisPhaseRunning {
			t.Fatalf("repeated Run: %s %q", again.Phase, again.Message)
		}
		t0 = time.Now()
		m = p.Resume(run, metric, m)
		l.resume = append(l.resume, time.Since(t0))
		if stop(i, m) {
			return l, m
		}
		time.Sleep(every)
	}
}

func TestRunLatencyWhileBenching(t *testing.T) {
	pluginBin := need(t, "SANDCANARY_PLUGIN_BIN")
	proxyBin := need(t, "SANDCANARY_PROXY_BIN")
	root := need(t, "SANDCANARY_ROOT")
	samples, _ := strconv.Atoi(os.Getenv("RUN_LATENCY_SAMPLES"))
	if samples <= 0 {
		samples = 10
	}
	every := 50 * time.Millisecond
	t.Setenv("SANDCANARY_ADMIN_TOKEN", token(t))
	t.Setenv("SANDCANARY_IDENTITY_TOKEN", token(t))
	// The operator lets templates name these two variables and send them to the loopback proxies.
	t.Setenv("SANDCANARY_SECRET_ENV", "SANDCANARY_ADMIN_TOKEN,SANDCANARY_IDENTITY_TOKEN")
	t.Setenv("SANDCANARY_PROXY_HOSTS", "127.0.0.1")
	stableData, stableAdmin := startProxy(t, proxyBin, root, "stable")
	canaryData, canaryAdmin := startProxy(t, proxyBin, root, "canary")

	raw, err := os.ReadFile(filepath.Join(root, "plugin/canary/examples/local-demo.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["samples"] = samples
	cfg["pollSeconds"] = 1
	cfg["placeholder"] = map[string]any{"durationMs": 3_600_000}
	arg := func(name, value string) v1alpha1.Argument { return v1alpha1.Argument{Name: name, Value: &value} }
	run := &v1alpha1.AnalysisRun{
		ObjectMeta: metav1.ObjectMeta{Name: "ar-latency", Namespace: "ns", UID: types.UID("uid-latency")},
		Spec: v1alpha1.AnalysisRunSpec{Args: []v1alpha1.Argument{
			arg("stable-data", "http://"+stableData), arg("stable-admin", "http://"+stableAdmin),
			arg("canary-data", "http://"+canaryData), arg("canary-admin", "http://"+canaryAdmin),
		}},
	}

	// The bench job: Run starts it, then Run and Resume are timed until the verdict.
	benchCfg := map[string]any{}
	for k, v := range cfg {
		if k != "placeholder" {
			benchCfg[k] = v
		}
	}
	bench := startPlugin(t, pluginBin)
	benchMetric := fixture.Metric("canary", "sandcanary/sandcanary", benchCfg)
	t0 := time.Now()
	first := bench.Run(run, benchMetric)
	firstRun := time.Since(t0)
	if first.Phase != v1alpha1.AnalysisPhaseRunning {
		t.Fatalf("Run: %s %q", first.Phase, first.Message)
	}
	benchStarted := time.Now()
	maxSeen := 0
	busy, final := poll(t, bench, run, benchMetric, first, every, func(_ int, m v1alpha1.Measurement) bool {
		if s := m.Metadata["sandcanary.progress.samples.stable"]; s != "" {
			var done, planned int
			fmt.Sscanf(s, "%d/%d", &done, &planned)
			maxSeen = max(maxSeen, done)
		}
		if time.Since(benchStarted) > 10*time.Minute {
			t.Fatalf("no verdict after 10 minutes: %+v", m)
		}
		return m.Phase.Completed()
	})
	benchTook := time.Since(benchStarted)
	if final.Phase == v1alpha1.AnalysisPhaseError {
		t.Fatalf("the bench job failed: %q", final.Message)
	}
	if maxSeen == 0 {
		t.Fatalf("Resume never reported sample progress while the bench ran")
	}

	// Baseline, same run: the same binary with the placeholder job (no bench running).
	idle := startPlugin(t, pluginBin, "SANDCANARY_JOB=placeholder")
	idleMetric := fixture.Metric("canary", "sandcanary/sandcanary", map[string]any{
		"pollSeconds": 1, "placeholder": map[string]any{"durationMs": 3_600_000}})
	m := idle.Run(run, idleMetric)
	if m.Phase != v1alpha1.AnalysisPhaseRunning {
		t.Fatalf("placeholder Run: %s %q", m.Phase, m.Message)
	}
	n := len(busy.run)
	base, _ := poll(t, idle, run, idleMetric, m, every, func(i int, _ v1alpha1.Measurement) bool { return i+1 >= n })

	row := func(name string, a, b []time.Duration, q float64) {
		x, y := quantile(a, q), quantile(b, q)
		fmt.Printf("| %s | %v | %v | %.2f |\n", name, x.Round(time.Microsecond), y.Round(time.Microsecond), float64(x)/float64(y))
	}
	fmt.Printf("\n## Plugin Run/Resume latency while the bench job runs (argo's RPC client, same run)\n\n")
	fmt.Printf("bench: %d samples per scenario and target (cold, warm), %v until the verdict (%s), %d round trips of each call, one every %v; first Run (starts the bench): %v\n\n",
		samples, benchTook.Round(time.Second), final.Phase, n, every, firstRun.Round(time.Microsecond))
	fmt.Println("| call | while benching | baseline: placeholder job, idle | ratio |")
	fmt.Println("|---|---|---|---|")
	row("Run p50", busy.run, base.run, 0.5)
	row("Run p99", busy.run, base.run, 0.99)
	row("Run max", busy.run, base.run, 1)
	row("Resume p50", busy.resume, base.resume, 0.5)
	row("Resume p99", busy.resume, base.resume, 0.99)
	row("Resume max", busy.resume, base.resume, 1)
	if q := quantile(busy.run, 0.99); q > time.Second {
		t.Errorf("Run p99 %v while benching: must stay in milliseconds", q)
	}
}
