//go:build argoe2e

package argoe2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	argoclient "github.com/argoproj/argo-rollouts/pkg/client/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"sandcanary/test/kube/kubeenv"
	"sandcanary/test/kube/saasfake"
)

const (
	// pluginName is the registration name in our ConfigMap and the key in our templates.
	pluginName = "sandcanary/sandcanary"
	ghOwner    = "sandcanary-e2e"
	ghRepo     = "proxy"
	// otherNamespace holds Secrets no AnalysisRun of the tests' namespace may read (TestTenantSecrets).
	otherNamespace = "team-b"
	// regressionDelay is held on every new connection to the regressed canary.
	regressionDelay = 1500 * time.Millisecond
)

// The world the tests share: one API server, one controller (in the ConfigMap's namespace), two proxies.
var (
	env        *kubeenv.Env
	controller *kubeenv.RolloutsController
	argo       argoclient.Interface
	namespace  string

	stableData, stableAdmin string
	canaryData, canaryAdmin string
	regressedData, pageURL  string
	github                  *saasfake.GitHub
	githubURL               string
	openai                  *saasfake.OpenAI
	openaiURL               string
	installedPlugin         string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func randomToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func need(name string) (string, error) {
	v := os.Getenv(name)
	if v == "" {
		return "", fmt.Errorf("%s must be set (make test-argo-e2e sets it)", name)
	}
	return v, nil
}

// pluginConfigMap reads our argo-rollouts-config ConfigMap, checks it registers exactly the sandcanary plugin
// with a file:// location, and returns it with the location pointing at the freshly built binary.
func pluginConfigMap(path, binary string) (*corev1.ConfigMap, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cm := &corev1.ConfigMap{}
	if err := yaml.UnmarshalStrict(raw, cm); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if cm.Kind != "ConfigMap" || cm.Name != "argo-rollouts-config" || cm.Namespace == "" {
		return nil, fmt.Errorf("%s: want ConfigMap argo-rollouts-config with a namespace, got %s %s/%s", path, cm.Kind, cm.Namespace, cm.Name)
	}
	var plugins []map[string]string
	if err := yaml.UnmarshalStrict([]byte(cm.Data["metricProviderPlugins"]), &plugins); err != nil {
		return nil, fmt.Errorf("%s: metricProviderPlugins: %w", path, err)
	}
	if len(plugins) != 1 || plugins[0]["name"] != pluginName || !strings.HasPrefix(plugins[0]["location"], "file:///") {
		return nil, fmt.Errorf("%s: want one plugin %q with a file:/// location, got %v", path, pluginName, plugins)
	}
	plugins[0]["location"] = "file://" + binary
	out, err := yaml.Marshal(plugins)
	if err != nil {
		return nil, err
	}
	cm.Data["metricProviderPlugins"] = string(out)
	return cm, nil
}

// startProxy runs sandcanary-proxy on the local backend (real Chromium sandboxes) and returns its data and
// admin addresses once it logs "listening".
func startProxy(bin, root, name string, stops *[]func()) (data, admin string, err error) {
	// Short: Chromium's unix socket paths under it are limited to 107 bytes.
	tmp, err := os.MkdirTemp("", "sc")
	if err != nil {
		return "", "", err
	}
	cmd := exec.Command(bin)
	cmd.Dir = root
	cmd.Env = append(os.Environ(),
		"LISTEN_ADDR=127.0.0.1:0", "METRICS_ADDR=127.0.0.1:0", "BACKEND=local",
		"IDENTITY=token", "IDENTITY_TOKEN="+os.Getenv("SANDCANARY_IDENTITY_TOKEN"),
		"SESSION_API_TOKEN="+os.Getenv("SANDCANARY_ADMIN_TOKEN"),
		// A killed plugin leaves its sandboxes behind: reap them soon and leave room for the next bench.
		"LOCAL_WARM_POOL=0", "LOCAL_MAX_SANDBOXES=16", "IDLE_TTL=1m", "IDLE_CHECK_INTERVAL=10s",
		"LOCAL_TMP_DIR="+tmp, "LOCAL_SANDBOX_SERVER="+filepath.Join(root, "deploy/sandbox/server.js"),
		"LOG_FORMAT=json", "RUST_LOG=info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return "", "", err
	}
	if err := cmd.Start(); err != nil {
		return "", "", err
	}
	*stops = append(*stops, func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		_ = os.RemoveAll(tmp)
	})
	lines := bufio.NewScanner(stderr)
	for lines.Scan() {
		var entry map[string]any
		if json.Unmarshal(lines.Bytes(), &entry) == nil && entry["message"] == "listening" {
			go func() { _, _ = io.Copy(io.Discard, stderr) }()
			return "http://" + entry["data"].(string), "http://" + entry["admin"].(string), nil
		}
	}
	return "", "", fmt.Errorf("%s proxy exited before listening", name)
}

func run(m *testing.M) int {
	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	if err := setup(&stops); err != nil {
		fmt.Fprintln(os.Stderr, "argoe2e setup:", err)
		return 1
	}
	code := m.Run()
	if code != 0 {
		if log, err := os.ReadFile(controller.LogFile); err == nil {
			lines := strings.Split(string(log), "\n")
			if len(lines) > 120 {
				lines = lines[len(lines)-120:]
			}
			fmt.Fprintf(os.Stderr, "--- rollouts controller log (tail) ---\n%s\n", strings.Join(lines, "\n"))
		}
	}
	return code
}

func setup(stops *[]func()) error {
	pluginBin, err := need("SANDCANARY_PLUGIN_BIN")
	if err != nil {
		return err
	}
	proxyBin, err := need("SANDCANARY_PROXY_BIN")
	if err != nil {
		return err
	}
	root := kubeenv.RepoRoot()

	// The controller (and so the plugin it starts) inherits this process's environment: the variables the
	// templates name for the organisation's secrets, as the controller's Deployment would get them from a
	// Secret. The proxies' tokens are also set here (for the proxies, and so that TestTenantSecrets can show
	// a template cannot name them); the templates read them from Secret sandcanary-proxy-tokens.
	ghToken, llmKey := randomToken(), randomToken()
	for k, v := range map[string]string{
		"SANDCANARY_ADMIN_TOKEN": randomToken(), "SANDCANARY_IDENTITY_TOKEN": randomToken(),
		"GITHUB_TOKEN": ghToken, "SANDCANARY_LLM_API_KEY": llmKey,
	} {
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}

	if stableData, stableAdmin, err = startProxy(proxyBin, root, "stable", stops); err != nil {
		return err
	}
	if canaryData, canaryAdmin, err = startProxy(proxyBin, root, "canary", stops); err != nil {
		return err
	}
	relay, stop, err := delayRelay(strings.TrimPrefix(canaryData, "http://"), regressionDelay)
	if err != nil {
		return err
	}
	*stops = append(*stops, stop)
	regressedData = "http://" + relay
	if pageURL, stop, err = serve(pageHandler()); err != nil {
		return err
	}
	*stops = append(*stops, stop)
	pageURL += "/"
	github = saasfake.NewGitHub(ghOwner, ghRepo, ghToken)
	if githubURL, stop, err = serve(github.Handler()); err != nil {
		return err
	}
	*stops = append(*stops, stop)
	openai = saasfake.NewOpenAI(llmKey, `{"promote":true,"confidence":92,"reasons":["canary latency matches stable"]}`)
	if openaiURL, stop, err = serve(openai.Handler()); err != nil {
		return err
	}
	*stops = append(*stops, stop)
	openaiURL += "/v1"
	// The operator's destinations for the controller's GitHub token and LLM key: the fakes. The llm
	// template reads pod logs in namespace playwright (its proxy-namespace default), which the operator
	// allows here because the runs are in the controller's namespace.
	for k, v := range map[string]string{"SANDCANARY_GITHUB_API_URL": githubURL, "SANDCANARY_LLM_BASE_URLS": openaiURL,
		"SANDCANARY_POD_LOGS_NAMESPACES": "playwright"} {
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if env, err = kubeenv.Start(ctx); err != nil {
		return fmt.Errorf("start API server: %w", err)
	}
	*stops = append(*stops, func() { _ = env.Stop() })

	cm, err := pluginConfigMap(filepath.Join(root, "deploy/argo-rollouts/file/argo-rollouts-config.yaml"), pluginBin)
	if err != nil {
		return err
	}
	namespace = cm.Namespace
	cmYAML, err := yaml.Marshal(cm)
	if err != nil {
		return err
	}
	cmFile := filepath.Join(env.Dir, "argo-rollouts-config.yaml")
	if err := os.WriteFile(cmFile, cmYAML, 0o600); err != nil {
		return err
	}
	if controller, err = env.StartRolloutsController(ctx, namespace, cmFile); err != nil {
		return fmt.Errorf("start rollouts controller: %w", err)
	}
	installedPlugin = filepath.Join(controller.WorkDir, "plugin-bin", "sandcanary", "sandcanary")
	if _, err := os.Stat(installedPlugin); err != nil {
		return fmt.Errorf("plugin not installed from its file:// location: %w", err)
	}
	if argo, err = argoclient.NewForConfig(env.Config); err != nil {
		return err
	}
	// The proxies' tokens in the runs' namespace, as the proxy's own Secret holds them (README), and a
	// Secret of the same name with other values in another namespace, which no run here may read.
	for _, sec := range []struct{ ns, admin, identity string }{
		{namespace, os.Getenv("SANDCANARY_ADMIN_TOKEN"), os.Getenv("SANDCANARY_IDENTITY_TOKEN")},
		{otherNamespace, randomToken(), randomToken()},
	} {
		if sec.ns != namespace {
			if out, err := env.Kubectl(ctx, nil, "create", "namespace", sec.ns); err != nil {
				return fmt.Errorf("create namespace %s: %v\n%s", sec.ns, err, out)
			}
		}
		if out, err := env.Kubectl(ctx, nil, "create", "secret", "generic", "-n", sec.ns, "sandcanary-proxy-tokens",
			"--from-literal=session-api-token="+sec.admin, "--from-literal=identity-token="+sec.identity); err != nil {
			return fmt.Errorf("create Secret in %s: %v\n%s", sec.ns, err, out)
		}
	}
	if out, err := env.Kubectl(ctx, nil, "create", "secret", "generic", "-n", otherNamespace, "team-b-only",
		"--from-literal=token="+randomToken()); err != nil {
		return fmt.Errorf("create Secret in %s: %v\n%s", otherNamespace, err, out)
	}
	// Our templates, applied as a user would.
	out, err := env.Kubectl(ctx, nil, "apply", "--server-side", "-n", namespace, "-f", filepath.Join(root, "analysis-templates"))
	if err != nil {
		return fmt.Errorf("apply analysis-templates/: %v\n%s", err, out)
	}
	fmt.Fprint(os.Stderr, out)
	return nil
}
