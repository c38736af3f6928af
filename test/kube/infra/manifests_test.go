package infra

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sandcanary/test/kube/kubeenv"
)

// validateManifests runs ../validate-manifests.sh against this package's server.
func validateManifests(t *testing.T, paths ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(kubeenv.ModuleDir(), "validate-manifests.sh"), paths...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig, "SANDCANARY_KUBE_DIR="+env.Dir, "SANDCANARY_KUBE_BIN="+env.BinDir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: playwright-proxy, namespace: sandcanary-e2e}
spec:
  selector: {matchLabels: {app: playwright-proxy}}
  template:
    metadata: {labels: {app: playwright-proxy}}
    spec:
      containers:
      - name: proxy
        image: sandcanary/proxy:test
        securityContext: {runAsNonRoot: true, readOnlyRootFilesystem: true}
`

// TestValidateManifests: valid manifests (plain files in a namespace that does not exist yet, a custom
// resource, a kustomization) pass; a manifest the server rejects fails the script with the server's reason.
func TestValidateManifests(t *testing.T) {
	good := writeFiles(t, map[string]string{
		"proxy/deployment.yaml": deployment,
		"claims/claim.yaml": `apiVersion: extensions.agents.x-k8s.io/v1beta1
kind: SandboxClaim
metadata: {name: pw-demo, namespace: sandcanary-e2e}
spec: {warmPoolRef: {name: playwright-pool}}
---
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: sandcanary, namespace: sandcanary-e2e}
spec:
  args: [{name: canary-url}]
  metrics:
  - name: up
    provider: {web: {url: "{{args.canary-url}}"}}
`,
		"overlay/kustomization.yaml": "namespace: sandcanary-kustomized\nresources: [service.yaml]\n",
		"overlay/service.yaml": `apiVersion: v1
kind: Service
metadata: {name: playwright-proxy}
spec:
  selector: {app: playwright-proxy}
  ports: [{port: 9000, targetPort: 9000}]
`,
	})
	out, err := validateManifests(t, good)
	if err != nil {
		t.Fatalf("valid manifests rejected: %v\n%s", err, out)
	}
	for _, want := range []string{"deployment.yaml", "claim.yaml", "overlay", "all manifests accepted"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not mention %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "service.yaml") {
		t.Errorf("a file of a kustomization was validated on its own:\n%s", out)
	}

	bad := writeFiles(t, map[string]string{
		"bad.yaml": strings.Replace(deployment, "  selector: {matchLabels: {app: playwright-proxy}}\n", "", 1) + `---
apiVersion: extensions.agents.x-k8s.io/v1beta1
kind: SandboxClaim
metadata: {name: pw-bad, namespace: sandcanary-e2e}
spec: {warmPoolRef: {name: playwright-pool}, lifecycle: {shutdownPolicy: Never}}
`,
	})
	out, err = validateManifests(t, filepath.Join(bad, "bad.yaml"))
	if err == nil {
		t.Fatalf("invalid manifests accepted:\n%s", out)
	}
	for _, want := range []string{"REJECTED", "spec.selector: Required value", "spec.lifecycle.shutdownPolicy: Unsupported value"} {
		if !strings.Contains(out, want) {
			t.Errorf("output does not mention %q:\n%s", want, out)
		}
	}
}
