package conformance

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/metricproviders/plugin/rpc"
	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
)

// handshake is exactly what argo's metric plugin client uses.
var handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "ARGO_ROLLOUTS_RPC_PLUGIN",
	MagicCookieValue: "metricprovider",
}

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func pluginBinary(t *testing.T, env string) string {
	t.Helper()
	p := os.Getenv(env)
	if p == "" {
		t.Fatalf("%s is not set: run the suite through `make test-goplugin`", env)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s=%s: %v", env, p, err)
	}
	return p
}

type launched struct {
	client   *goplugin.Client
	protocol goplugin.ClientProtocol
	plugin   rpc.MetricProviderPlugin
	logs     *syncBuffer // hclog output of the host
	stderr   *syncBuffer // raw stderr lines of the plugin
	startup  time.Duration
}

// clientConfig mirrors argo's client.GetMetricPlugin configuration; only the log sinks differ
// so the test can read them.
func clientConfig(bin string, plugins map[string]goplugin.Plugin, logs, stderr io.Writer) *goplugin.ClientConfig {
	return &goplugin.ClientConfig{
		HandshakeConfig: handshake,
		Plugins:         plugins,
		Cmd:             exec.Command(bin),
		Managed:         true,
		Stderr:          stderr,
		Logger:          hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Trace, Output: logs}),
	}
}

// launch starts the conformance plugin the way argo does: spawn, handshake, Dispense,
// InitPlugin, Ping.
func launch(t *testing.T) *launched {
	t.Helper()
	l := &launched{logs: &syncBuffer{}, stderr: &syncBuffer{}}
	l.client = goplugin.NewClient(clientConfig(pluginBinary(t, "PLUGIN_BIN"),
		map[string]goplugin.Plugin{"RpcMetricProviderPlugin": &rpc.RpcMetricProviderPlugin{}}, l.logs, l.stderr))
	t.Cleanup(l.client.Kill)
	start := time.Now()
	cp, err := l.client.Client()
	if err != nil {
		t.Fatalf("Client(): %v\nlogs:\n%s", err, l.logs.String())
	}
	l.startup = time.Since(start)
	l.protocol = cp
	raw, err := cp.Dispense("RpcMetricProviderPlugin")
	if err != nil {
		t.Fatalf("Dispense: %v", err)
	}
	l.plugin = raw.(rpc.MetricProviderPlugin)
	if e := l.plugin.InitPlugin(); e.HasError() {
		t.Fatalf("InitPlugin: %v", e.Error())
	}
	if err := cp.Ping(); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	return l
}
