//go:build canarye2e

// Package canarye2e drives the real sandcanary-plugin through Argo's own client path
// (config.InitializeConfig, plugin.DownloadPlugins with a file:// location, client.GetMetricPlugin) and
// lets it bench two real sandcanary-proxy processes on the local backend (real Chromium sandboxes):
// a healthy canary must give Successful, a canary behind a delaying relay Failed. Run by
// `make test-canary-argo` (it is behind a build tag so the per-release-line conformance runs skip it).
package canarye2e

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/metricproviders/plugin/client"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/argoproj/argo-rollouts/utils/config"
	"github.com/argoproj/argo-rollouts/utils/plugin"
	goplugin "github.com/hashicorp/go-plugin"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"

	"sandcanary.invalid/conformance/fixture"
)

func need(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s must be set (make test-canary-argo sets it)", name)
	}
	return v
}

func token(t *testing.T) string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// startProxy runs sandcanary-proxy on the local backend and returns its data and admin addresses.
func startProxy(t *testing.T, bin, root, name string) (data, admin string) {
	t.Helper()
	// A short directory: Chromium's unix socket paths under it are limited to 107 bytes.
	tmp, err := os.MkdirTemp("", "sc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(tmp) })
	cmd := exec.Command(bin)
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"LISTEN_ADDR=127.0.0.1:0", "METRICS_ADDR=127.0.0.1:0", "BACKEND=local",
		"IDENTITY=token", "IDENTITY_TOKEN="+os.Getenv("SANDCANARY_IDENTITY_TOKEN"),
		"SESSION_API_TOKEN="+os.Getenv("SANDCANARY_ADMIN_TOKEN"),
		"LOCAL_WARM_POOL=0", "LOCAL_TMP_DIR="+tmp,
		"LOCAL_SANDBOX_SERVER="+filepath.Join(root, "deploy/sandbox/server.js"),
		"LOG_FORMAT=json", "RUST_LOG=info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	lines := bufio.NewScanner(stderr)
	for lines.Scan() {
		var entry map[string]any
		if json.Unmarshal(lines.Bytes(), &entry) == nil && entry["message"] == "listening" {
			go io.Copy(io.Discard, stderr)
			return entry["data"].(string), entry["admin"].(string)
		}
	}
	t.Fatalf("%s proxy exited before listening", name)
	return "", ""
}

// delayRelay forwards connections to target after holding each new connection for delay: a
// regression in front of an otherwise healthy proxy.
func delayRelay(t *testing.T, target string, delay time.Duration) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				time.Sleep(delay)
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c); _ = u.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	return l.Addr().String()
}

// secretArg is an argument as Argo's controller passes it to a plugin once it resolved
// valueFrom.secretKeyRef: the value filled in, ValueFrom kept.
func secretArg(name, key, value string) v1alpha1.Argument {
	return v1alpha1.Argument{Name: name, Value: &value, ValueFrom: &v1alpha1.ValueFrom{
		SecretKeyRef: &v1alpha1.SecretKeyRef{Name: "sandcanary-proxy-tokens", Key: key}}}
}

func TestCanaryVerdictsThroughArgosClient(t *testing.T) {
	pluginBin := need(t, "SANDCANARY_PLUGIN_BIN")
	proxyBin := need(t, "SANDCANARY_PROXY_BIN")
	root := need(t, "SANDCANARY_ROOT")
	// The plugin process inherits this environment; its configuration names these variables.
	t.Setenv("SANDCANARY_ADMIN_TOKEN", token(t))
	t.Setenv("SANDCANARY_IDENTITY_TOKEN", token(t))
	t.Setenv("POD_NAMESPACE", "argo-rollouts")

	stableData, stableAdmin := startProxy(t, proxyBin, root, "stable")
	canaryData, canaryAdmin := startProxy(t, proxyBin, root, "canary")
	slowCanary := delayRelay(t, canaryData, 1500*time.Millisecond)

	t.Chdir(t.TempDir())
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "argo-rollouts-config", Namespace: "argo-rollouts"},
		Data:       map[string]string{"metricProviderPlugins": "- name: sandcanary/sandcanary\n  location: file://" + pluginBin + "\n"},
	}
	kc := fake.NewSimpleClientset(cm)
	if _, err := config.InitializeConfig(kc, "argo-rollouts-config"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(config.UnInitializeConfig)
	if err := plugin.DownloadPlugins(plugin.FileDownloaderImpl{}, kc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(goplugin.CleanupClients)

	raw, err := os.ReadFile(filepath.Join(root, "plugin/canary/examples/local-demo.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["samples"] = 5
	// The tokens as Argo hands them to plugins: an argument with valueFrom.secretKeyRef arrives with the
	// Secret's value filled in by the controller (analysis.go resolveArgs), ValueFrom kept. The
	// controller's own variables are refused by the plugin's default rules (checked below).
	cfg["sessionApiToken"] = map[string]any{"arg": "admin-token"}
	cfg["identityToken"] = map[string]any{"arg": "identity-token"}
	metric := fixture.Metric("canary", "sandcanary/sandcanary", cfg)
	p, err := client.GetMetricPlugin(metric)
	if err != nil {
		t.Fatal(err)
	}

	// The same plugin refuses what a hostile template would try, at Run, with an Error naming the rule;
	// a secret-looking argument without valueFrom.secretKeyRef is not accepted as a secret either.
	t.Run("refused", func(t *testing.T) {
		arg := func(name, value string) v1alpha1.Argument { return v1alpha1.Argument{Name: name, Value: &value} }
		run := &v1alpha1.AnalysisRun{
			ObjectMeta: metav1.ObjectMeta{Name: "ar-refused", Namespace: "ns", UID: types.UID("uid-ar-refused")},
			Spec: v1alpha1.AnalysisRunSpec{Args: []v1alpha1.Argument{
				arg("stable-data", "http://"+stableData), arg("stable-admin", "http://"+stableAdmin),
				arg("canary-data", "http://"+canaryData), arg("canary-admin", "http://"+canaryAdmin),
				arg("plain-token", os.Getenv("SANDCANARY_ADMIN_TOKEN")),
				secretArg("identity-token", "identity-token", os.Getenv("SANDCANARY_IDENTITY_TOKEN")),
			}},
		}
		for _, c := range []struct {
			ref  map[string]any
			want string
		}{
			{map[string]any{"file": "/var/run/secrets/kubernetes.io/serviceaccount/token"}, "service-account"},
			{map[string]any{"file": "/etc/shadow"}, "SANDCANARY_SECRET_DIRS"},
			{map[string]any{"env": "SANDCANARY_ADMIN_TOKEN"}, "SANDCANARY_SECRET_ENV"},
			{map[string]any{"arg": "plain-token"}, "plain value"},
		} {
			bad := map[string]any{}
			for k, v := range cfg {
				bad[k] = v
			}
			bad["sessionApiToken"] = c.ref
			m := fixture.Metric("canary", "sandcanary/sandcanary", bad)
			got := p.Run(run, m)
			if got.Phase == v1alpha1.AnalysisPhaseRunning {
				// arg references are checked when the job starts: the verdict is an Error.
				for i := 0; i < 30 && !got.Phase.Completed(); i++ {
					time.Sleep(200 * time.Millisecond)
					got = p.Resume(run, m, got)
				}
			}
			t.Logf("%v -> %s %q", c.ref, got.Phase, got.Message)
			if got.Phase != v1alpha1.AnalysisPhaseError || !strings.Contains(got.Message, c.want) {
				t.Fatalf("%v: want an Error naming %q, got %s %q", c.ref, c.want, got.Phase, got.Message)
			}
			if strings.Contains(got.Message, os.Getenv("SANDCANARY_ADMIN_TOKEN")) {
				t.Fatalf("the refusal repeats a secret")
			}
		}
	})

	for _, tc := range []struct {
		name       string
		canaryData string
		want       v1alpha1.AnalysisPhase
	}{
		{"healthy", canaryData, v1alpha1.AnalysisPhaseSuccessful},
		{"regressed", slowCanary, v1alpha1.AnalysisPhaseFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			arg := func(name, value string) v1alpha1.Argument { return v1alpha1.Argument{Name: name, Value: &value} }
			run := &v1alpha1.AnalysisRun{
				ObjectMeta: metav1.ObjectMeta{Name: "ar-" + tc.name, Namespace: "ns", UID: types.UID("uid-ar-" + tc.name)},
				Spec: v1alpha1.AnalysisRunSpec{Args: []v1alpha1.Argument{
					arg("stable-data", "http://"+stableData), arg("stable-admin", "http://"+stableAdmin),
					arg("canary-data", "http://"+tc.canaryData), arg("canary-admin", "http://"+canaryAdmin),
					secretArg("admin-token", "session-api-token", os.Getenv("SANDCANARY_ADMIN_TOKEN")),
					secretArg("identity-token", "identity-token", os.Getenv("SANDCANARY_IDENTITY_TOKEN")),
				}},
			}
			start := time.Now()
			m := p.Run(run, metric)
			t.Logf("Run answered in %v: %s %q", time.Since(start), m.Phase, m.Message)
			if m.Phase != v1alpha1.AnalysisPhaseRunning || m.ResumeAt == nil {
				t.Fatalf("Run must return Running with ResumeAt, got %+v", m)
			}
			deadline := time.Now().Add(8 * time.Minute)
			progressSeen := ""
			for !m.Phase.Completed() {
				if time.Now().After(deadline) {
					t.Fatalf("no verdict in time: %+v", m)
				}
				time.Sleep(time.Second)
				m = p.Resume(run, metric, m)
				// While the bench runs, Resume carries its sample progress per target.
				if s := m.Metadata["sandcanary.progress.samples.canary"]; !m.Phase.Completed() && s != "" {
					progressSeen = fmt.Sprintf("stable %s, canary %s, scenario %q, %q",
						m.Metadata["sandcanary.progress.samples.stable"], s,
						m.Metadata["sandcanary.progress.scenario"], m.Message)
				}
			}
			if progressSeen == "" {
				t.Fatalf("no Resume reported sample progress while the bench ran")
			}
			t.Logf("last progress seen: %s", progressSeen)
			for k := range m.Metadata {
				if strings.HasPrefix(k, "sandcanary.progress.") {
					t.Fatalf("progress key %s left in the final measurement", k)
				}
			}
			t.Logf("verdict %s value=%s message=%q metadata=%v", m.Phase, m.Value, m.Message, m.Metadata)
			if m.Phase != tc.want {
				t.Fatalf("want %s, got %s: %s", tc.want, m.Phase, m.Message)
			}
			for k, v := range m.Metadata {
				for _, secret := range []string{os.Getenv("SANDCANARY_ADMIN_TOKEN"), os.Getenv("SANDCANARY_IDENTITY_TOKEN")} {
					if strings.Contains(v, secret) || strings.Contains(k, secret) {
						t.Fatalf("a token reached Metadata[%s]", k)
					}
				}
			}
		})
	}
}
