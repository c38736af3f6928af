// Command sandbox-sim plays the sandbox controllers (agent-sandbox, KARS, isola) against a real API server
// for tests: it watches SandboxClaims, KarsSandboxes and isola Sandboxes in one namespace, starts the real
// Chromium sandbox server (deploy/sandbox/server.js) for each on its own loopback address, and writes the
// status those controllers would write, through the status subresource. Tests script failures per sandbox
// id in a ConfigMap (see README.md); nothing here fakes the API server itself.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	if err := run(); err != nil {
		slog.Error("sandbox-sim failed", "err", err)
		os.Exit(1)
	}
}

func run() error {
	var opts options
	flag.StringVar(&opts.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the API server")
	flag.StringVar(&opts.namespace, "namespace", "default", "namespace whose sandbox objects are simulated")
	flag.StringVar(&opts.kinds, "kinds", "sandboxclaim,karssandbox,isola", "comma-separated kinds to simulate")
	flag.StringVar(&opts.labelKey, "label-key", "playwright-id", "label carrying the sandbox id on the objects")
	flag.StringVar(&opts.scriptConfigMap, "script-configmap", "sandbox-sim", "ConfigMap (same namespace) mapping id -> behaviour")
	flag.StringVar(&opts.server, "server", defaultServer(), "sandbox server program run with node")
	flag.StringVar(&opts.ipPrefix, "ip-prefix", "127.0.100.", "sandboxes get addresses <prefix>1 .. <prefix>254")
	flag.IntVar(&opts.port, "port", 9222, "WebSocket port of every sandbox (the proxy's SANDBOX_PORT)")
	flag.IntVar(&opts.mcpPort, "mcp-port", 0, "MCP port of every sandbox (0: none)")
	flag.DurationVar(&opts.readyTimeout, "ready-timeout", defaultReadyTimeout, "how long a sandbox server may take to start")
	flag.Parse()
	if opts.port < 1 || opts.port > 65535 || opts.mcpPort < 0 || opts.mcpPort > 65535 {
		return fmt.Errorf("ports out of range: --port %d --mcp-port %d", opts.port, opts.mcpPort)
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", opts.kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	core, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	kinds, err := parseKinds(opts.kinds)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	sim := newSimulator(opts, dyn, core)
	defer sim.shutdown()
	return sim.run(ctx, kinds)
}

// defaultServer finds deploy/sandbox/server.js relative to this module (test/kube) in the working tree.
func defaultServer() string {
	if root := os.Getenv("SANDCANARY_ROOT"); root != "" {
		return filepath.Join(root, "deploy", "sandbox", "server.js")
	}
	wd, _ := os.Getwd()
	for dir := wd; dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		candidate := filepath.Join(dir, "deploy", "sandbox", "server.js")
		if _, err := os.Stat(candidate); err == nil {
			return candidate
		}
	}
	return "deploy/sandbox/server.js"
}
