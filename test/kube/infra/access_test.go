package infra

import (
	"context"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// tokenConfig is the admin config with its credentials replaced by a bearer token.
func tokenConfig(token string) *rest.Config {
	cfg := rest.AnonymousClientConfig(env.Config)
	cfg.BearerToken = token
	return cfg
}

// TestRBACWithServiceAccountToken shows RBAC is enforced: a service account token minted by the server
// (TokenRequest, signed with the generated key) gets exactly what its Role grants, as the proxy would in a cluster.
func TestRBACWithServiceAccountToken(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	other := newNamespace(t)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "playwright-proxy"}}
	if _, err := clients.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "playwright-proxy"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"extensions.agents.x-k8s.io"}, Resources: []string{"sandboxclaims"}, Verbs: []string{"get", "list", "watch", "create", "delete"}},
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
		},
	}
	if _, err := clients.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "playwright-proxy"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "playwright-proxy"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "playwright-proxy", Namespace: ns}},
	}
	if _, err := clients.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expiry := int64(3600)
	tr, err := clients.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "playwright-proxy",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest: %v", err)
	}
	cfg := tokenConfig(tr.Status.Token)
	saDyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	saCore, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}

	// Granted: claims and pods in its own namespace. RBAC grants arrive through an informer in the server,
	// so the first calls may briefly see the old state; allow a few seconds.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = saDyn.Resource(claimGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("service account cannot list claims in its namespace: %v", err)
	}
	if _, err := saCore.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("service account cannot list pods: %v", err)
	}
	// Not granted: another namespace, another resource, a verb it lacks.
	if _, err := saDyn.Resource(claimGVR).Namespace(other).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("claims in another namespace: want Forbidden, got %v", err)
	}
	if _, err := saCore.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("secrets: want Forbidden, got %v", err)
	}
	if _, err := saCore.CoreV1().Pods(ns).Create(ctx, testPod("nope", "x"), metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("pod create: want Forbidden, got %v", err)
	}

	// An unknown token is not authenticated at all.
	bogus, err := kubernetes.NewForConfig(tokenConfig("not-a-valid-token"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bogus.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("bogus token: want Unauthorized, got %v", err)
	}
}

func testPod(name, id string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"playwright-id": id}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "client", Image: "sandcanary/client:test",
		}}},
	}
}

// TestClientPodsWithLoopbackIPs is the pattern the identity tests use: pods exist only as API objects (no
// kubelet), their status says they run on 127.0.0.x, and deleting a pod bound to a node leaves it
// terminating (deletionTimestamp set) until it is force-deleted, as a kubelet would.
func TestClientPodsWithLoopbackIPs(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	pods := clients.CoreV1().Pods(ns)

	bound := testPod("client-a", "alice")
	bound.Spec.NodeName = "fake-node"
	created, err := pods.Create(ctx, bound, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod: %v", err)
	}
	created.Status = corev1.PodStatus{
		Phase:  corev1.PodRunning,
		PodIP:  "127.0.0.11",
		PodIPs: []corev1.PodIP{{IP: "127.0.0.11"}, {IP: "::1"}},
	}
	if _, err := pods.UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update pod status: %v", err)
	}
	// Field selectors on status.podIP work against the real server (what a fallback lookup would use).
	list, err := pods.List(ctx, metav1.ListOptions{
		LabelSelector: "playwright-id",
		FieldSelector: fields.OneTermEqualSelector("status.podIP", "127.0.0.11").String(),
	})
	if err != nil {
		t.Fatalf("list by podIP: %v", err)
	}
	if len(list.Items) != 1 || list.Items[0].Labels["playwright-id"] != "alice" || len(list.Items[0].Status.PodIPs) != 2 {
		t.Fatalf("list by podIP: %+v", list.Items)
	}

	// Graceful delete of a node-bound pod only marks it.
	if err := pods.Delete(ctx, "client-a", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	terminating, err := pods.Get(ctx, "client-a", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("pod vanished on graceful delete: %v", err)
	}
	if terminating.DeletionTimestamp == nil {
		t.Fatalf("no deletionTimestamp after delete")
	}
	zero := int64(0)
	if err := pods.Delete(ctx, "client-a", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatalf("force delete: %v", err)
	}
	if _, err := pods.Get(ctx, "client-a", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("pod still there after force delete: %v", err)
	}

	// A pod never bound to a node is removed at once, and its IP can be reused by a new pod.
	unbound, err := pods.Create(ctx, testPod("client-b", "bob"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	unbound.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.11", PodIPs: []corev1.PodIP{{IP: "127.0.0.11"}}}
	if _, err := pods.UpdateStatus(ctx, unbound, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pods.Delete(ctx, "client-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Get(ctx, "client-b", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("unbound pod not removed at once: %v", err)
	}
}

// TestKubectlServerSideDryRun drives the kubectl built from the same release: a server-side dry-run apply
// of a valid manifest succeeds and an invalid one fails with the field in the message.
func TestKubectlServerSideDryRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ns := newNamespace(t)
	valid := `apiVersion: extensions.agents.x-k8s.io/v1beta1
kind: SandboxClaim
metadata:
  name: pw-erin
  labels: {playwright-proxy/managed: "true", playwright-id: erin}
spec:
  warmPoolRef: {name: playwright-pool}
`
	out, err := env.Kubectl(ctx, []byte(valid), "apply", "--server-side", "--dry-run=server", "-n", ns, "-f", "-")
	if err != nil || !strings.Contains(out, "serverside-applied (server dry run)") {
		t.Fatalf("valid manifest: err=%v output=%s", err, out)
	}
	invalid := strings.Replace(valid, "warmPoolRef: {name: playwright-pool}", "lifecycle: {shutdownPolicy: Never}", 1)
	out, err = env.Kubectl(ctx, []byte(invalid), "apply", "--server-side", "--dry-run=server", "-n", ns, "-f", "-")
	if err == nil || !strings.Contains(out, "spec.warmPoolRef: Required value") {
		t.Fatalf("invalid manifest: want failure naming spec.warmPoolRef, err=%v output=%s", err, out)
	}
	// Nothing was stored by either dry run.
	out, err = env.Kubectl(ctx, nil, "get", "sandboxclaims", "-n", ns, "-o", "name")
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("dry runs stored objects: err=%v output=%q", err, out)
	}
	// kubectl reports the server it talks to as the version we built.
	out, err = env.Kubectl(ctx, nil, "version", "-o", "json")
	if err != nil || !strings.Contains(out, `"gitVersion": "v1.34`) {
		t.Fatalf("kubectl version: err=%v output=%s", err, out)
	}
}
