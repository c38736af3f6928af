package kubeenv

import (
	"strings"
	"testing"
)

func TestParseEnv(t *testing.T) {
	out := `export KUBECONFIG=/tmp/k/kubeconfig
export SANDCANARY_KUBE_DIR=/tmp/k
export SANDCANARY_KUBE_SERVER=https://127.0.0.1:12345
export SANDCANARY_KUBE_CA=/tmp/k/pki/ca.crt
export SANDCANARY_KUBE_BIN=/cache/bin
`
	env, err := parseEnv(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if env.Kubeconfig != "/tmp/k/kubeconfig" || env.Dir != "/tmp/k" || env.Server != "https://127.0.0.1:12345" ||
		env.CAFile != "/tmp/k/pki/ca.crt" || env.BinDir != "/cache/bin" {
		t.Fatalf("parsed %+v", env)
	}
	if _, err := parseEnv(strings.NewReader("export KUBECONFIG=/tmp/k/kubeconfig\n")); err == nil {
		t.Fatal("incomplete env accepted")
	}
	if _, err := parseEnv(strings.NewReader(strings.Replace(out, "/tmp/k/kubeconfig", `'/tmp/a b/kubeconfig'`, 1))); err == nil {
		t.Fatal("quoted path accepted")
	}
}

func TestModuleLayout(t *testing.T) {
	if !strings.HasSuffix(ModuleDir(), "test/kube") {
		t.Fatalf("ModuleDir %s", ModuleDir())
	}
	files, err := ProjectCRDFiles()
	if err != nil {
		t.Fatal(err)
	}
	crds, err := ReadCRDs(files...)
	if err != nil {
		t.Fatalf("our CRDs do not parse strictly: %v", err)
	}
	if len(crds) != 6 {
		t.Fatalf("want 6 CRDs in deploy/crds, got %d", len(crds))
	}
}
