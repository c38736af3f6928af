// Package kubeenv starts the real etcd + kube-apiserver from ../apiserver.sh for Go tests and installs CRDs
// into it, so every Go suite under test/kube talks to the same kind of server the lead's Rust tests use.
package kubeenv

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// Env is one running API server. Its fields mirror the variables apiserver.sh prints.
type Env struct {
	Kubeconfig string // path of a cluster-admin kubeconfig (token auth)
	Dir        string // state dir; Stop removes it
	Server     string // https://127.0.0.1:<port>
	CAFile     string // CA bundle for Server
	BinDir     string // kube-apiserver, kubectl, etcd, rollouts-controller
	Config     *rest.Config
}

// ModuleDir is test/kube, found from this source file so tests work from any package directory.
func ModuleDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// RepoRoot is the sandcanary checkout containing test/kube.
func RepoRoot() string { return filepath.Dir(filepath.Dir(ModuleDir())) }

// Start runs `apiserver.sh start` in a fresh temp dir and returns once /readyz answers.
func Start(ctx context.Context) (*Env, error) {
	dir, err := os.MkdirTemp("", "sandcanary-kube-go.")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(ModuleDir(), "apiserver.sh"), "start", dir)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("apiserver.sh start: %w", err)
	}
	env, err := parseEnv(&stdout)
	if err != nil {
		return nil, err
	}
	env.Config, err = clientcmd.BuildConfigFromFlags("", env.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", env.Kubeconfig, err)
	}
	// Tests create bursts of objects; the client-side default (5 qps) would only slow them down.
	env.Config.QPS, env.Config.Burst = 200, 400
	return env, nil
}

func parseEnv(r io.Reader) (*Env, error) {
	env := &Env{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		// apiserver.sh quotes with printf %q; our temp paths never need quoting, so reject anything that does.
		if strings.ContainsAny(value, `'"\ `) {
			return nil, fmt.Errorf("unexpected quoted value for %s: %q", key, value)
		}
		switch key {
		case "KUBECONFIG":
			env.Kubeconfig = value
		case "SANDCANARY_KUBE_DIR":
			env.Dir = value
		case "SANDCANARY_KUBE_SERVER":
			env.Server = value
		case "SANDCANARY_KUBE_CA":
			env.CAFile = value
		case "SANDCANARY_KUBE_BIN":
			env.BinDir = value
		}
	}
	if env.Kubeconfig == "" || env.Dir == "" || env.Server == "" || env.BinDir == "" {
		return nil, fmt.Errorf("apiserver.sh printed an incomplete env")
	}
	return env, sc.Err()
}

// Stop ends every process of the instance (including ones registered under Dir/pids) and removes Dir.
func (e *Env) Stop() error { return e.script("stop") }

// StopAPIServer stops only kube-apiserver (etcd and all data stay): an API outage as clients see it.
func (e *Env) StopAPIServer() error { return e.script("stop-apiserver") }

// StartAPIServer starts kube-apiserver again on the same address with the same credentials and data, and
// returns once /readyz answers.
func (e *Env) StartAPIServer() error { return e.script("start-apiserver") }

// StartControllerManager runs kube-controller-manager (ReplicaSet, Deployment, GC, namespace, service
// account and EndpointSlice controllers) against this server; Stop stops it.
func (e *Env) StartControllerManager() error { return e.script("start-controller-manager") }

func (e *Env) script(command string) error {
	cmd := exec.Command(filepath.Join(ModuleDir(), "apiserver.sh"), command, e.Dir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// Kubectl runs the kubectl built next to kube-apiserver against this instance.
func (e *Env) Kubectl(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(e.BinDir, "kubectl"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.Kubeconfig)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ReadCRDs parses every CustomResourceDefinition in the given YAML files (multi-document files allowed).
func ReadCRDs(paths ...string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
		for {
			doc, err := docs.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := yaml.UnmarshalStrict(doc, crd); err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			if crd.Kind != "CustomResourceDefinition" {
				continue
			}
			crds = append(crds, crd)
		}
	}
	return crds, nil
}

// InstallCRDs creates (or replaces) the CRDs and waits until each is Established and served.
func InstallCRDs(ctx context.Context, cfg *rest.Config, crds []*apiextensionsv1.CustomResourceDefinition) error {
	client, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	api := client.ApiextensionsV1().CustomResourceDefinitions()
	for _, crd := range crds {
		_, err := api.Create(ctx, crd, metav1.CreateOptions{FieldManager: "sandcanary-test"})
		if apierrors.IsAlreadyExists(err) {
			existing, getErr := api.Get(ctx, crd.Name, metav1.GetOptions{})
			if getErr != nil {
				return getErr
			}
			crd = crd.DeepCopy()
			crd.ResourceVersion = existing.ResourceVersion
			_, err = api.Update(ctx, crd, metav1.UpdateOptions{FieldManager: "sandcanary-test"})
		}
		if err != nil {
			return fmt.Errorf("install CRD %s: %w", crd.Name, err)
		}
	}
	for _, crd := range crds {
		name := crd.Name
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true,
			func(ctx context.Context) (bool, error) {
				got, err := api.Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return false, err
				}
				for _, c := range got.Status.Conditions {
					if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
						return true, nil
					}
					if c.Type == apiextensionsv1.NamesAccepted && c.Status == apiextensionsv1.ConditionFalse {
						return false, fmt.Errorf("CRD %s names not accepted: %s", name, c.Message)
					}
				}
				return false, nil
			})
		if err != nil {
			return fmt.Errorf("CRD %s not established: %w", name, err)
		}
	}
	return nil
}

// ProjectCRDFiles lists the CRDs sandcanary keeps in deploy/crds.
func ProjectCRDFiles() ([]string, error) {
	files, err := filepath.Glob(filepath.Join(RepoRoot(), "deploy", "crds", "*", "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no CRDs under deploy/crds")
	}
	return files, nil
}

// ArgoCRDFiles lists the Argo Rollouts CRDs shipped in the argo-rollouts module pinned by go.mod, read from the
// module cache (they are not copied into the repo).
func ArgoCRDFiles(ctx context.Context) ([]string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/argoproj/argo-rollouts")
	cmd.Dir = ModuleDir()
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("locate argo-rollouts module: %w", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return nil, fmt.Errorf("argo-rollouts module is not downloaded (run go mod download in test/kube)")
	}
	files, err := filepath.Glob(filepath.Join(dir, "manifests", "crds", "*-crd.yaml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no CRDs in %s/manifests/crds", dir)
	}
	return files, nil
}

// RolloutsController describes an Argo Rollouts controller started by StartRolloutsController.
type RolloutsController struct {
	Namespace string
	LogFile   string
	WorkDir   string // the controller's cwd; metric plugins are placed in WorkDir/plugin-bin
}

// StartRolloutsController runs ../rollouts-controller.sh start: Argo's CRDs, the namespace, the
// argo-rollouts-config ConfigMap (configMapYAML, or an empty one when ""), then the controller scoped to
// namespace. Stop (of the Env) stops it too.
func (e *Env) StartRolloutsController(ctx context.Context, namespace, configMapYAML string) (*RolloutsController, error) {
	args := []string{"start", namespace}
	if configMapYAML != "" {
		args = append(args, configMapYAML)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(ModuleDir(), "rollouts-controller.sh"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.Kubeconfig, "SANDCANARY_KUBE_DIR="+e.Dir)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("rollouts-controller.sh start: %w", err)
	}
	rc := &RolloutsController{Namespace: namespace}
	for _, line := range strings.Split(stdout.String(), "\n") {
		key, value, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			continue
		}
		switch key {
		case "SANDCANARY_ROLLOUTS_LOG":
			rc.LogFile = value
		case "SANDCANARY_ROLLOUTS_WORKDIR":
			rc.WorkDir = value
		}
	}
	if rc.LogFile == "" || rc.WorkDir == "" {
		return nil, fmt.Errorf("rollouts-controller.sh printed an incomplete env: %q", stdout.String())
	}
	return rc, nil
}

// PIDsRunning lists the processes whose argv[0] is binary, read from /proc: how tests find the plugin
// processes the rollouts controller started, to kill one and to see it restarted.
func PIDsRunning(binary string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv0, _, _ := bytes.Cut(cmdline, []byte{0})
		if string(argv0) == binary {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
