package conformance

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/rpc"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	argorpc "github.com/argoproj/argo-rollouts/metricproviders/plugin/rpc"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	goplugin "github.com/hashicorp/go-plugin"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sandcanary.invalid/conformance/fixture"
)

const key = "acme/conformance"

func smallRun() *v1alpha1.AnalysisRun {
	return &v1alpha1.AnalysisRun{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "n", UID: "u"}}
}

func TestC01LaunchHandshakeDispenseInitPing(t *testing.T) {
	l := launch(t)
	rc := l.client.ReattachConfig()
	if rc == nil || rc.Protocol != goplugin.ProtocolNetRPC {
		t.Fatalf("reattach config %+v: want netrpc", rc)
	}
	if rc.Addr.Network() != "unix" {
		t.Fatalf("network %q, want unix", rc.Addr.Network())
	}
	if _, err := os.Stat(rc.Addr.String()); err != nil {
		t.Fatalf("socket %s: %v", rc.Addr, err)
	}
	if l.startup > time.Second {
		t.Fatalf("handshake took %v, want < 1s", l.startup)
	}
}

func TestC02Type(t *testing.T) {
	l := launch(t)
	if got := l.plugin.Type(); got != "SandcanaryConformance" {
		t.Fatalf("Type() = %q", got)
	}
}

func TestC03GetMetadata(t *testing.T) {
	l := launch(t)
	m := fixture.Metric("meta", "any-org/any-name", map[string]any{"x": 1})
	got := l.plugin.GetMetadata(m)
	if got["pluginKey"] != "any-org/any-name" || got["config"] != `{"x":1}` {
		t.Fatalf("GetMetadata = %v", got)
	}
	m = fixture.Metric("meta", key, map[string]any{"metadataError": "nope"})
	got = l.plugin.GetMetadata(m)
	if got["error"] != "failed to get metadata via plugin: nope" {
		t.Fatalf("error key = %q", got["error"])
	}
}

func TestC04RunMaximalFixture(t *testing.T) {
	l := launch(t)
	metric := fixture.MaximalMetric(key, map[string]any{"echo": "max", "value": "0.75"})
	run := fixture.MaximalRun(metric, 0)
	// Twice: the first call defines hundreds of types on the stream, the second reuses them.
	for i := 0; i < 2; i++ {
		m := l.plugin.Run(run, metric)
		if m.Phase != v1alpha1.AnalysisPhaseSuccessful || m.Value != "0.75" {
			t.Fatalf("call %d: phase %q value %q message %q", i, m.Phase, m.Value, m.Message)
		}
		d := m.Metadata
		want := map[string]string{
			"pluginKey":                      key,
			"config":                         string(metric.Provider.Plugin[key]),
			"echo":                           `"max"`,
			"metric.name":                    "maximal",
			"metric.interval":                "30s",
			"metric.initialDelay":            "5s",
			"metric.count":                   "int:3",
			"metric.failureLimit":            "int:-1",
			"metric.inconclusiveLimit":       "str:2",
			"metric.consecutiveErrorLimit":   "int:0",
			"metric.consecutiveSuccessLimit": "str:{{args.n}}",
			"metric.successCondition":        "result[0] >= 0.9",
			"metric.failureCondition":        "result[0] < 0.5",
			"run.name":                       "ar-1",
			"run.namespace":                  "ns1",
			"run.uid":                        "uid-123",
			"run.generation":                 "7",
			"run.labels":                     `{"app":"web","tier":"edge"}`,
			"run.annotationCount":            "1",
			"run.rollout":                    "web",
			"run.creationTimestamp":          fmt.Sprintf("%d.%09d", fixture.Created.Unix(), fixture.Created.Nanosecond()),
			"run.deletionTimestamp":          fmt.Sprintf("%d.%09d", fixture.Deleted.Unix(), fixture.Deleted.Nanosecond()),
			"run.terminate":                  "true",
			"run.dryRun":                     `["dry.*"]`,
			"run.phase":                      "Running",
			"run.startedAt":                  fmt.Sprintf("%d.%09d", fixture.Created.Unix(), fixture.Created.Nanosecond()),
			"run.ownerReferences": `[{"apiVersion":"argoproj.io/v1alpha1","blockOwnerDeletion":null,"controller":true,"kind":"Rollout","name":"web","uid":"r-uid"},` +
				`{"apiVersion":"v1","blockOwnerDeletion":null,"controller":null,"kind":"Other","name":"o","uid":"o-uid"}]`,
			"run.args": `[{"fieldRef":null,"name":"plain","secret":null,"value":"v1"},` +
				`{"fieldRef":null,"name":"secret","secret":"sec/k","value":"s3cr3t"},` +
				`{"fieldRef":"metadata.labels['app']","name":"field","secret":null,"value":null}]`,
		}
		for k, v := range want {
			if d[k] != v {
				t.Errorf("call %d: digest[%s] = %q, want %q", i, k, d[k], v)
			}
		}
		var results []map[string]any
		if err := json.Unmarshal([]byte(d["run.metricResults"]), &results); err != nil || len(results) != 2 {
			t.Fatalf("metricResults %q: %v", d["run.metricResults"], err)
		}
		last := run.Status.MetricResults[0].Measurements[9]
		if results[0]["measurements"] != float64(10) || results[0]["lastValue"] != last.Value ||
			results[0]["lastStartedAt"] != fmt.Sprintf("%d.%09d", last.StartedAt.Unix(), last.StartedAt.Nanosecond()) {
			t.Errorf("metricResults[0] = %v", results[0])
		}
	}
}

func TestC05RunNilAnalysisRun(t *testing.T) {
	l := launch(t)
	m := l.plugin.Run(nil, fixture.Metric("nil", key, map[string]any{}))
	if m.Phase != v1alpha1.AnalysisPhaseError || !strings.HasPrefix(m.Message, "failed to run via plugin: ") {
		t.Fatalf("Run(nil) = %q %q", m.Phase, m.Message)
	}
}

func TestC06ResumeTerminateRoundTrip(t *testing.T) {
	l := launch(t)
	metric := fixture.Metric("rt", key, map[string]any{"resumePhase": "Inconclusive", "terminatePhase": "Failed"})
	started := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 999999999, time.UTC))
	resume := metav1.NewTime(started.Add(10*time.Second + 1))
	sent := v1alpha1.Measurement{Phase: v1alpha1.AnalysisPhaseRunning, Message: "in progress", StartedAt: &started,
		ResumeAt: &resume, Value: "v", Metadata: map[string]string{"job": "42", "empty": ""}}
	check := func(name string, got v1alpha1.Measurement, phase v1alpha1.AnalysisPhase) {
		t.Helper()
		if got.Phase != phase || got.Message != sent.Message || got.Value != sent.Value ||
			len(got.Metadata) != 2 || got.Metadata["job"] != "42" || got.FinishedAt != nil {
			t.Fatalf("%s returned %+v", name, got)
		}
		for _, pair := range [][2]*metav1.Time{{got.StartedAt, sent.StartedAt}, {got.ResumeAt, sent.ResumeAt}} {
			if pair[0] == nil || !pair[0].Equal(pair[1]) || pair[0].Location() != time.UTC {
				t.Fatalf("%s time %v, want %v in UTC", name, pair[0], pair[1])
			}
		}
	}
	check("Resume", l.plugin.Resume(smallRun(), metric, sent), v1alpha1.AnalysisPhaseInconclusive)
	got := l.plugin.Terminate(smallRun(), metric, sent)
	if got.Message == "failed to terminate via plugin: " {
		t.Fatalf("unexpected error prefix")
	}
	check("Terminate", got, v1alpha1.AnalysisPhaseFailed)
}

func TestC07GarbageCollect(t *testing.T) {
	l := launch(t)
	if e := l.plugin.GarbageCollect(smallRun(), fixture.Metric("gc", key, map[string]any{}), 10); e.HasError() {
		t.Fatalf("GarbageCollect: %v", e.Error())
	}
	e := l.plugin.GarbageCollect(smallRun(), fixture.Metric("gc", key, map[string]any{"gcError": "full"}), 10)
	if !e.HasError() || !strings.Contains(e.Error(), "full") {
		t.Fatalf("scripted GC error lost: %q", e.ErrorString)
	}
}

func TestC08Concurrency(t *testing.T) {
	l := launch(t)
	const n = 64
	const slow = 8 * time.Second
	var wg sync.WaitGroup
	done := make([]time.Duration, n)
	start := time.Now()
	for i := 0; i < n; i++ {
		cfg := map[string]any{"echo": i}
		if i == 0 {
			cfg["sleepMs"] = slow.Milliseconds()
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			m := l.plugin.Run(smallRun(), fixture.Metric(fmt.Sprint("m", i), key, cfg))
			done[i] = time.Since(start)
			if m.Metadata["echo"] != fmt.Sprint(i) || m.Metadata["metric.name"] != fmt.Sprint("m", i) {
				t.Errorf("call %d got the reply of %s/%s", i, m.Metadata["echo"], m.Metadata["metric.name"])
			}
		}(i)
	}
	time.Sleep(time.Second)
	pingStart := time.Now()
	if err := l.protocol.Ping(); err != nil {
		t.Fatalf("Ping during slow Run: %v", err)
	}
	if d := time.Since(pingStart); d > 100*time.Millisecond {
		t.Errorf("Ping took %v during a slow Run", d)
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		if done[i] > slow/2 {
			t.Errorf("call %d waited %v behind the slow call", i, done[i])
		}
	}
	if done[0] < slow {
		t.Errorf("slow call returned after %v, before its sleep", done[0])
	}
}

func TestC09FlowControl(t *testing.T) {
	l := launch(t)
	metric := fixture.Metric("big", key, map[string]any{"metadataBytes": 1 << 20})
	run := fixture.MaximalRun(metric, 2<<20)
	m := l.plugin.Run(run, metric)
	if m.Phase != v1alpha1.AnalysisPhaseSuccessful {
		t.Fatalf("Run: %q %q", m.Phase, m.Message)
	}
	if len(m.Metadata["filler"]) != 1<<20 {
		t.Fatalf("reply filler %d bytes", len(m.Metadata["filler"]))
	}
	if m.Metadata["run.annotationBytes"] != fmt.Sprint(2<<20+len("big")+len("note")+len("hello")) {
		t.Fatalf("annotation bytes %s", m.Metadata["run.annotationBytes"])
	}
	// The stream still works after megabytes in both directions.
	if m := l.plugin.Run(smallRun(), fixture.Metric("after", key, map[string]any{})); m.Phase != v1alpha1.AnalysisPhaseSuccessful {
		t.Fatalf("Run after big call: %q", m.Message)
	}
}

func TestC11Kill(t *testing.T) {
	l := launch(t)
	sock := l.client.ReattachConfig().Addr.String()
	pid := l.client.ReattachConfig().Pid
	start := time.Now()
	l.client.Kill()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Kill took %v", d)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("plugin pid %d still alive after Kill", pid)
	}
	if strings.Contains(l.logs.String(), "plugin failed to exit gracefully") {
		t.Fatalf("host logged a forced kill:\n%s", l.logs.String())
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket %s left behind: %v", sock, err)
	}
}

func TestC12SigkillThenRelaunch(t *testing.T) {
	l := launch(t)
	pid := l.client.ReattachConfig().Pid
	// A SIGKILLed plugin cannot remove its socket; the test does.
	sock := l.client.ReattachConfig().Addr.String()
	t.Cleanup(func() { _ = os.Remove(sock) })
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !l.client.Exited() {
		if time.Now().After(deadline) {
			t.Fatal("client never noticed the plugin exit")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if m := l.plugin.Run(smallRun(), fixture.Metric("dead", key, map[string]any{})); m.Phase != v1alpha1.AnalysisPhaseError {
		t.Fatalf("Run on a dead plugin: %q", m.Phase)
	}
	l2 := launch(t)
	if m := l2.plugin.Run(smallRun(), fixture.Metric("again", key, map[string]any{})); m.Phase != v1alpha1.AnalysisPhaseSuccessful {
		t.Fatalf("relaunched Run: %q %q", m.Phase, m.Message)
	}
}

func TestC13Logs(t *testing.T) {
	l := launch(t)
	l.plugin.Run(smallRun(), fixture.Metric("log", key, map[string]any{}))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(l.logs.String(), "conformance error line") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	logs := l.logs.String()
	for _, want := range []string{
		"[INFO]  plugin.conformance: conformance plugin initialised",
		"[WARN]  plugin.conformance: conformance warning line",
		"[ERROR] plugin.conformance: conformance error line",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("host log lacks %q:\n%s", want, logs)
		}
	}
	lines := strings.Split(strings.TrimSpace(l.stderr.String()), "\n")
	if len(lines) < 3 {
		t.Fatalf("only %d stderr lines", len(lines))
	}
	levels := map[string]bool{"trace": true, "debug": true, "info": true, "warn": true, "error": true}
	for _, line := range lines {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("stderr line is not JSON: %q", line)
		}
		for _, k := range []string{"@level", "@message", "@timestamp"} {
			if _, ok := obj[k].(string); !ok {
				t.Fatalf("%s is not a string in %q", k, line)
			}
		}
		if !levels[obj["@level"].(string)] {
			t.Fatalf("bad level in %q", line)
		}
		if _, err := time.Parse("2006-01-02T15:04:05.000000Z07:00", obj["@timestamp"].(string)); err != nil {
			t.Fatalf("timestamp layout: %v", err)
		}
	}
}

func TestC14NoMagicCookie(t *testing.T) {
	cmd := exec.Command(pluginBinary(t, "PLUGIN_BIN"))
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1", err)
	}
	if stdout.Len() != 0 {
		t.Fatalf("stdout not empty: %q", stdout.String())
	}
	if !strings.Contains(stderr.String(), "This binary is a plugin") {
		t.Fatalf("stderr: %q", stderr.String())
	}
}

// rawPlugin hands the test the broker stream's *rpc.Client itself.
type rawPlugin struct{}

func (rawPlugin) Server(*goplugin.MuxBroker) (any, error)                  { return nil, errors.New("client only") }
func (rawPlugin) Client(_ *goplugin.MuxBroker, c *rpc.Client) (any, error) { return c, nil }

func TestC15UnknownMethodAndOddArguments(t *testing.T) {
	logs, stderr := &syncBuffer{}, &syncBuffer{}
	c := goplugin.NewClient(clientConfig(pluginBinary(t, "PLUGIN_BIN"), map[string]goplugin.Plugin{"RpcMetricProviderPlugin": rawPlugin{}}, logs, stderr))
	t.Cleanup(c.Kill)
	cp, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := cp.Dispense("RpcMetricProviderPlugin")
	if err != nil {
		t.Fatal(err)
	}
	rc := raw.(*rpc.Client)
	var resp any
	err = rc.Call("Plugin.Nope", new(any), &resp)
	if se, ok := err.(rpc.ServerError); !ok || string(se) != "rpc: can't find method Plugin.Nope" {
		t.Fatalf("unknown method: %#v", err)
	}
	err = rc.Call("Nope.Run", new(any), &resp)
	if err == nil || !strings.Contains(err.Error(), "can't find service") {
		t.Fatalf("unknown service: %v", err)
	}
	// A plain string where an interface holding RunArgs belongs: an Error measurement.
	var m v1alpha1.Measurement
	if err := rc.Call("Plugin.Run", "not run args", &m); err != nil {
		t.Fatalf("odd argument: %v", err)
	}
	if m.Phase != v1alpha1.AnalysisPhaseError {
		t.Fatalf("odd argument gave %q", m.Phase)
	}
	// The wrong registered type inside the interface.
	var wrong any = argorpc.GetMetadataArgs{Metric: fixture.Metric("x", key, map[string]any{})}
	m = v1alpha1.Measurement{}
	if err := rc.Call("Plugin.Run", &wrong, &m); err != nil || m.Phase != v1alpha1.AnalysisPhaseError {
		t.Fatalf("wrong interface type: %v %q", err, m.Phase)
	}
	// A panicking provider method still answers.
	var panicky any = argorpc.RunArgs{AnalysisRun: smallRun(), Metric: fixture.Metric("p", key, map[string]any{"panic": true})}
	m = v1alpha1.Measurement{}
	if err := rc.Call("Plugin.Run", &panicky, &m); err != nil || m.Phase != v1alpha1.AnalysisPhaseError {
		t.Fatalf("panic: %v %q", err, m.Phase)
	}
	// The same client still serves a proper call.
	var args any = argorpc.RunArgs{AnalysisRun: smallRun(), Metric: fixture.Metric("ok", key, map[string]any{"echo": "fine"})}
	m = v1alpha1.Measurement{}
	if err := rc.Call("Plugin.Run", &args, &m); err != nil {
		t.Fatalf("Run after bad calls: %v", err)
	}
	if m.Phase != v1alpha1.AnalysisPhaseSuccessful || m.Metadata["echo"] != `"fine"` {
		t.Fatalf("Run after bad calls: %+v", m)
	}
	if err := cp.Ping(); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}
