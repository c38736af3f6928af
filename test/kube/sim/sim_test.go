package sim

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"sandcanary/test/kube/kubeenv"
)

const (
	namespace = "sim"
	ipPrefix  = "127.0.101."
)

var (
	env      *kubeenv.Env
	dyn      dynamic.Interface
	core     kubernetes.Interface
	port     int
	claimGVR = schema.GroupVersionResource{Group: "extensions.agents.x-k8s.io", Version: "v1beta1", Resource: "sandboxclaims"}
	isolaGVR = schema.GroupVersionResource{Group: "sandbox.isola.run", Version: "v1alpha1", Resource: "sandboxes"}
	karsGVR  = schema.GroupVersionResource{Group: "kars.azure.com", Version: "v1alpha1", Resource: "karssandboxes"}
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var err error
	if env, err = kubeenv.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "start API server:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	if err := setup(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		return 1
	}
	stopSim, err := startSim(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start sandbox-sim:", err)
		return 1
	}
	defer stopSim()
	return m.Run()
}

func setup(ctx context.Context) error {
	var err error
	if dyn, err = dynamic.NewForConfig(env.Config); err != nil {
		return err
	}
	if core, err = kubernetes.NewForConfig(env.Config); err != nil {
		return err
	}
	files, err := kubeenv.ProjectCRDFiles()
	if err != nil {
		return err
	}
	crds, err := kubeenv.ReadCRDs(files...)
	if err != nil {
		return err
	}
	if err := kubeenv.InstallCRDs(ctx, env.Config, crds); err != nil {
		return err
	}
	_, err = core.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	// Scripted behaviours, by sandbox id.
	_, err = core.CoreV1().ConfigMaps(namespace).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "sandbox-sim"},
		Data: map[string]string{
			"bob":   "terminal:WarmPoolNotFound",
			"carol": "never-ready",
			"dave":  "dead-endpoint",
			"erin":  "terminal:Degraded",
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	// One port for every sandbox, free on the first address of our range.
	ln, err := net.Listen("tcp", ipPrefix+"1:0")
	if err != nil {
		return err
	}
	port = ln.Addr().(*net.TCPAddr).Port
	return ln.Close()
}

// startSim builds and runs cmd/sandbox-sim and waits for its ready line.
func startSim(ctx context.Context) (func(), error) {
	bin := filepath.Join(env.Dir, "sandbox-sim")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sandbox-sim")
	build.Dir = kubeenv.ModuleDir()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--kubeconfig", env.Kubeconfig, "--namespace", namespace,
		"--ip-prefix", ipPrefix, "--port", fmt.Sprint(port),
		"--server", filepath.Join(kubeenv.RepoRoot(), "deploy", "sandbox", "server.js"))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "SANDBOX_SIM_READY" {
				ready <- true
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if ok {
			return stop, nil
		}
	case <-time.After(60 * time.Second):
	}
	stop()
	return nil, fmt.Errorf("sandbox-sim did not become ready")
}

func create(t *testing.T, gvr schema.GroupVersionResource, kind, id string, spec map[string]any) {
	t.Helper()
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": gvr.GroupVersion().String(), "kind": kind,
		"metadata": map[string]any{"name": "pw-" + id, "labels": map[string]any{"playwright-proxy/managed": "true", "playwright-id": id}},
		"spec":     spec,
	}}
	if _, err := dyn.Resource(gvr).Namespace(namespace).Create(context.Background(), obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create %s pw-%s: %v", kind, id, err)
	}
}

// waitFor polls the object until cond says done; it returns the last object seen.
func waitFor(t *testing.T, gvr schema.GroupVersionResource, name string, timeout time.Duration, cond func(*unstructured.Unstructured) bool) *unstructured.Unstructured {
	t.Helper()
	var last *unstructured.Unstructured
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		got, err := dyn.Resource(gvr).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		last = got
		return cond(got), nil
	})
	if err != nil {
		t.Fatalf("%s: condition not reached: %v (last status %v)", name, err, last.Object["status"])
	}
	return last
}

func readyCondition(u *unstructured.Unstructured) (status, reason string) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m := c.(map[string]any)
		if m["type"] == "Ready" {
			return fmt.Sprint(m["status"]), fmt.Sprint(m["reason"])
		}
	}
	return "", ""
}

func dial(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err == nil {
		_ = c.Close()
	}
	return err
}

var claimSpec = map[string]any{"warmPoolRef": map[string]any{"name": "playwright-pool"}}

// TestClaimReadyThenDeleted: a claim gets a real sandbox on a loopback address, reported through status,
// and deleting the claim stops it.
func TestClaimReadyThenDeleted(t *testing.T) {
	create(t, claimGVR, "SandboxClaim", "alice", claimSpec)
	got := waitFor(t, claimGVR, "pw-alice", 120*time.Second, func(u *unstructured.Unstructured) bool {
		s, _ := readyCondition(u)
		return s == "True"
	})
	ips, _, _ := unstructured.NestedStringSlice(got.Object, "status", "sandbox", "podIPs")
	if len(ips) != 1 || !strings.HasPrefix(ips[0], ipPrefix) {
		t.Fatalf("podIPs %v", ips)
	}
	addr := net.JoinHostPort(ips[0], fmt.Sprint(port))
	if err := dial(addr); err != nil {
		t.Fatalf("sandbox reported ready but %s does not accept connections: %v", addr, err)
	}
	if err := dyn.Resource(claimGVR).Namespace(namespace).Delete(context.Background(), "pw-alice", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return dial(addr) != nil, nil
	})
	if err != nil {
		t.Fatalf("sandbox at %s still listening after its claim was deleted", addr)
	}
}

// TestClaimScriptedFailures: terminal reasons and never-ready claims are reported as scripted.
func TestClaimScriptedFailures(t *testing.T) {
	create(t, claimGVR, "SandboxClaim", "bob", claimSpec)
	create(t, claimGVR, "SandboxClaim", "carol", claimSpec)
	waitFor(t, claimGVR, "pw-bob", 30*time.Second, func(u *unstructured.Unstructured) bool {
		s, r := readyCondition(u)
		return s == "False" && r == "WarmPoolNotFound"
	})
	waitFor(t, claimGVR, "pw-carol", 30*time.Second, func(u *unstructured.Unstructured) bool {
		s, r := readyCondition(u)
		return s == "False" && r == "DependenciesNotReady"
	})
	time.Sleep(2 * time.Second)
	carol := waitFor(t, claimGVR, "pw-carol", time.Second, func(*unstructured.Unstructured) bool { return true })
	if s, _ := readyCondition(carol); s != "False" {
		t.Fatalf("never-ready claim became %q", s)
	}
}

// TestIsolaReady: an isola Sandbox gets Ready=True and status.podIP with a listening sandbox.
func TestIsolaReady(t *testing.T) {
	create(t, isolaGVR, "Sandbox", "frank", map[string]any{"podTemplate": map[string]any{"spec": map[string]any{}}})
	got := waitFor(t, isolaGVR, "pw-frank", 120*time.Second, func(u *unstructured.Unstructured) bool {
		s, _ := readyCondition(u)
		return s == "True"
	})
	ip, _, _ := unstructured.NestedString(got.Object, "status", "podIP")
	if err := dial(net.JoinHostPort(ip, fmt.Sprint(port))); err != nil {
		t.Fatalf("isola sandbox at %s not listening: %v", ip, err)
	}
}

// TestKars: a ready KarsSandbox gets phase Running, its namespace and a labelled Running pod there; a
// scripted one reports the terminal phase.
func TestKars(t *testing.T) {
	spec := func() map[string]any {
		return map[string]any{
			"runtime":      map[string]any{"kind": "BYO", "byo": map[string]any{"image": "sandbox:test", "contractVersion": "v1"}},
			"sandbox":      map[string]any{"isolation": "standard"},
			"inferenceRef": map[string]any{"name": "default"},
		}
	}
	create(t, karsGVR, "KarsSandbox", "dave", spec())
	create(t, karsGVR, "KarsSandbox", "erin", spec())
	got := waitFor(t, karsGVR, "pw-dave", 30*time.Second, func(u *unstructured.Unstructured) bool {
		phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
		return phase == "Running"
	})
	ns, _, _ := unstructured.NestedString(got.Object, "status", "namespace")
	if ns != "kars-pw-dave" {
		t.Fatalf("status.namespace %q", ns)
	}
	pods, err := core.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "kars.azure.com/component=sandbox"})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].Status.Phase != corev1.PodRunning || !strings.HasPrefix(pods.Items[0].Status.PodIP, ipPrefix) {
		t.Fatalf("KARS pod: %v %+v", err, pods)
	}
	waitFor(t, karsGVR, "pw-erin", 30*time.Second, func(u *unstructured.Unstructured) bool {
		phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
		return phase == "Degraded"
	})
}
