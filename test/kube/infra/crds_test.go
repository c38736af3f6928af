package infra

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/rand"
)

var (
	claimGVR      = schema.GroupVersionResource{Group: "extensions.agents.x-k8s.io", Version: "v1beta1", Resource: "sandboxclaims"}
	claimV1a1GVR  = schema.GroupVersionResource{Group: "extensions.agents.x-k8s.io", Version: "v1alpha1", Resource: "sandboxclaims"}
	templateGVR   = schema.GroupVersionResource{Group: "extensions.agents.x-k8s.io", Version: "v1beta1", Resource: "sandboxtemplates"}
	warmPoolGVR   = schema.GroupVersionResource{Group: "extensions.agents.x-k8s.io", Version: "v1beta1", Resource: "sandboxwarmpools"}
	sandboxGVR    = schema.GroupVersionResource{Group: "agents.x-k8s.io", Version: "v1beta1", Resource: "sandboxes"}
	karsGVR       = schema.GroupVersionResource{Group: "kars.azure.com", Version: "v1alpha1", Resource: "karssandboxes"}
	isolaGVR      = schema.GroupVersionResource{Group: "sandbox.isola.run", Version: "v1alpha1", Resource: "sandboxes"}
	analysisTGVR  = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "analysistemplates"}
	analysisRGVR  = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "analysisruns"}
	rolloutGVR    = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "rollouts"}
	sandboxLabels = map[string]any{"playwright-proxy/managed": "true", "playwright-id": "alice"}
)

// crdCase describes one kind: a valid object, the status a controller would write, what the server must
// default, and invalid variants that server-side validation must reject.
type crdCase struct {
	name     string
	gvr      schema.GroupVersionResource
	kind     string
	object   func(name string) map[string]any
	status   map[string]any
	defaults map[string]any // dotted path under the object -> expected value after create
	invalid  []invalidCase
	// noStatusSubresource marks kinds whose status is written with the object (Argo's AnalysisRun).
	noStatusSubresource bool
}

type invalidCase struct {
	name   string
	mutate func(obj map[string]any)
	want   string // substring of the server's error
}

func readyCondition(reason string) map[string]any {
	return map[string]any{
		"type": "Ready", "status": "True", "reason": reason, "message": "",
		"lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
	}
}

func podTemplate() map[string]any {
	return map[string]any{
		"metadata": map[string]any{"labels": map[string]any{"app": "playwright-sandbox"}},
		"spec": map[string]any{"containers": []any{map[string]any{
			"name": "playwright", "image": "sandcanary/sandbox:test", "command": []any{"node", "/server.js"},
			"ports": []any{map[string]any{"containerPort": int64(9222)}},
		}}},
	}
}

func crdCases() []crdCase {
	return []crdCase{
		{
			name: "SandboxClaim", gvr: claimGVR, kind: "SandboxClaim",
			object: func(name string) map[string]any {
				return map[string]any{
					"metadata": map[string]any{"name": name, "labels": sandboxLabels},
					"spec": map[string]any{
						"warmPoolRef":           map[string]any{"name": "playwright-pool"},
						"lifecycle":             map[string]any{},
						"additionalPodMetadata": map[string]any{"labels": map[string]any{"sandbox.users.io/playwright-id": "alice"}},
					},
				}
			},
			status: map[string]any{
				"conditions": []any{readyCondition("DependenciesReady")},
				"sandbox":    map[string]any{"name": "playwright-pool-abcde", "podIPs": []any{"127.0.0.2"}},
			},
			defaults: map[string]any{"spec.lifecycle.shutdownPolicy": "Retain"},
			invalid: []invalidCase{
				{"missing warmPoolRef", func(o map[string]any) { delete(spec(o), "warmPoolRef") }, "spec.warmPoolRef: Required value"},
				{"bad shutdownPolicy", func(o map[string]any) { spec(o)["lifecycle"] = map[string]any{"shutdownPolicy": "Never"} }, "spec.lifecycle.shutdownPolicy: Unsupported value"},
				{"empty pool name", func(o map[string]any) { spec(o)["warmPoolRef"] = map[string]any{"name": ""} }, "spec.warmPoolRef.name"},
			},
		},
		{
			name: "Sandbox", gvr: sandboxGVR, kind: "Sandbox",
			object: func(name string) map[string]any {
				return map[string]any{
					"metadata": map[string]any{"name": name},
					"spec":     map[string]any{"podTemplate": podTemplate()},
				}
			},
			status: map[string]any{
				"conditions": []any{readyCondition("DependenciesReady")},
				"podIPs":     []any{"127.0.0.3"}, "serviceFQDN": "sb.default.svc.cluster.local",
			},
			defaults: map[string]any{"spec.operatingMode": "Running", "spec.shutdownPolicy": "Retain"},
			invalid: []invalidCase{
				{"bad operatingMode", func(o map[string]any) { spec(o)["operatingMode"] = "Paused" }, "spec.operatingMode: Unsupported value"},
				{"no podTemplate", func(o map[string]any) { delete(spec(o), "podTemplate") }, "spec.podTemplate: Required value"},
			},
		},
		{
			name: "SandboxTemplate", gvr: templateGVR, kind: "SandboxTemplate",
			object: func(name string) map[string]any {
				return map[string]any{
					"metadata": map[string]any{"name": name},
					"spec":     map[string]any{"podTemplate": podTemplate(), "networkPolicyManagement": "Unmanaged"},
				}
			},
			status:   map[string]any{"observed": "yes"},
			defaults: map[string]any{"spec.envVarsInjectionPolicy": "Disallowed", "spec.volumeClaimTemplatesPolicy": "Disallowed"},
			invalid: []invalidCase{
				{"bad envVarsInjectionPolicy", func(o map[string]any) { spec(o)["envVarsInjectionPolicy"] = "Sometimes" }, "spec.envVarsInjectionPolicy: Unsupported value"},
				{"no containers", func(o map[string]any) {
					spec(o)["podTemplate"] = map[string]any{"spec": map[string]any{"containers": []any{}}}
				}, "spec.podTemplate.spec.containers"},
			},
		},
		{
			name: "SandboxWarmPool", gvr: warmPoolGVR, kind: "SandboxWarmPool",
			object: func(name string) map[string]any {
				return map[string]any{
					"metadata": map[string]any{"name": name},
					"spec":     map[string]any{"sandboxTemplateRef": map[string]any{"name": "playwright"}},
				}
			},
			status:   map[string]any{"replicas": int64(1), "readyReplicas": int64(1), "selector": "agents.x-k8s.io/pool=x"},
			defaults: map[string]any{"spec.replicas": int64(1), "spec.updateStrategy": nil},
			invalid: []invalidCase{
				{"negative replicas", func(o map[string]any) { spec(o)["replicas"] = int64(-1) }, "spec.replicas"},
				{"bad update strategy", func(o map[string]any) { spec(o)["updateStrategy"] = map[string]any{"type": "RollingUpdate"} }, "spec.updateStrategy.type: Unsupported value"},
			},
		},
		{
			name: "KarsSandbox", gvr: karsGVR, kind: "KarsSandbox",
			object: func(name string) map[string]any {
				return map[string]any{
					"metadata": map[string]any{"name": name, "labels": sandboxLabels},
					"spec": map[string]any{
						"runtime": map[string]any{"kind": "BYO", "byo": map[string]any{
							"image": "sandcanary/sandbox:test", "command": []any{"node", "/server.js"}, "contractVersion": "v1",
							"env": []any{map[string]any{"name": "PORT", "value": "9222"}},
						}},
						"sandbox":       map[string]any{"isolation": "standard", "runAsNonRoot": true, "allowPrivilegeEscalation": false},
						"inferenceRef":  map[string]any{"name": "default"},
						"networkPolicy": map[string]any{"defaultDeny": false, "egressMode": "Learn"},
					},
				}
			},
			status:   map[string]any{"phase": "Running", "namespace": "kars-pw-alice", "sandboxPod": "pw-alice-0"},
			defaults: map[string]any{"spec.sandbox.readOnlyRootFilesystem": true},
			invalid: []invalidCase{
				{"unknown runtime kind", func(o map[string]any) { spec(o)["runtime"].(map[string]any)["kind"] = "Docker" }, "spec.runtime.kind: Unsupported value"},
				{"BYO without byo block", func(o map[string]any) { delete(spec(o)["runtime"].(map[string]any), "byo") }, "runtime.byo is required"},
				{"bad contractVersion", func(o map[string]any) {
					spec(o)["runtime"].(map[string]any)["byo"].(map[string]any)["contractVersion"] = "v2"
				}, "spec.runtime.byo.contractVersion: Unsupported value"},
				{"missing inferenceRef", func(o map[string]any) { delete(spec(o), "inferenceRef") }, "spec.inferenceRef: Required value"},
			},
		},
		{
			name: "IsolaSandbox", gvr: isolaGVR, kind: "Sandbox",
			object: func(name string) map[string]any {
				return map[string]any{
					"metadata": map[string]any{"name": name, "labels": sandboxLabels},
					"spec": map[string]any{
						"podTemplate": map[string]any{"spec": podTemplate()["spec"]},
						"network":     map[string]any{"allowInternetEgress": true, "allowClusterDNS": true},
					},
				}
			},
			status: map[string]any{
				"conditions": []any{readyCondition("PodRunning")},
				"podIP":      "127.0.0.4",
			},
			defaults: map[string]any{"spec.startupTimeoutSeconds": int64(90)},
			invalid: []invalidCase{
				{"name over 47 chars", func(o map[string]any) {
					o["metadata"].(map[string]any)["name"] = "pw-" + strings.Repeat("a", 45)
				}, "metadata.name must be at most 47 characters"},
				{"too many egress CIDRs", func(o map[string]any) {
					cidrs := make([]any, 17)
					for i := range cidrs {
						cidrs[i] = fmt.Sprintf("10.0.%d.0/24", i)
					}
					spec(o)["network"].(map[string]any)["allowedEgressCIDRs"] = cidrs
				}, "spec.network.allowedEgressCIDRs: Too many"},
			},
		},
		{
			name: "AnalysisTemplate", gvr: analysisTGVR, kind: "AnalysisTemplate",
			object: func(name string) map[string]any {
				return map[string]any{
					"metadata": map[string]any{"name": name},
					"spec": map[string]any{"metrics": []any{map[string]any{
						"name": "up", "successCondition": "result == 'ok'",
						"provider": map[string]any{"web": map[string]any{"url": "http://127.0.0.1:1/", "jsonPath": "{$.status}"}},
					}}},
				}
			},
			invalid: []invalidCase{
				{"metric without provider", func(o map[string]any) {
					delete(spec(o)["metrics"].([]any)[0].(map[string]any), "provider")
				}, "provider: Required value"},
			},
		},
		{
			name: "AnalysisRun", gvr: analysisRGVR, kind: "AnalysisRun",
			object: func(name string) map[string]any {
				return map[string]any{
					"metadata": map[string]any{"name": name},
					"spec": map[string]any{"metrics": []any{map[string]any{
						"name": "up", "provider": map[string]any{"web": map[string]any{"url": "http://127.0.0.1:1/"}},
					}}},
				}
			},
			status:              map[string]any{"phase": "Running", "startedAt": time.Now().UTC().Format(time.RFC3339)},
			noStatusSubresource: true,
			invalid: []invalidCase{
				{"metrics not a list", func(o map[string]any) { spec(o)["metrics"] = "up" }, "spec.metrics"},
			},
		},
	}
}

func spec(o map[string]any) map[string]any { return o["spec"].(map[string]any) }

// newNamespace creates a uniquely named namespace. Namespaces are not deleted afterwards: without
// kube-controller-manager nothing would finalize them, and the whole server goes away at the end anyway.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := "t-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	name = strings.ReplaceAll(name, "_", "-")
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.TrimRight(name, "-") + "-" + rand.String(5)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := clients.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

func toUnstructured(c crdCase, obj map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: obj}
	u.SetAPIVersion(c.gvr.GroupVersion().String())
	u.SetKind(c.kind)
	return u
}

func lookup(obj map[string]any, dotted string) (any, bool) {
	value, found, err := unstructured.NestedFieldNoCopy(obj, strings.Split(dotted, ".")...)
	return value, found && err == nil
}

// TestCRDObjects creates, reads, status-updates, dry-runs and rejects objects of every kind we install.
func TestCRDObjects(t *testing.T) {
	for _, c := range crdCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			ns := newNamespace(t)
			api := dyn.Resource(c.gvr).Namespace(ns)

			// A server-side dry run of a valid object is accepted and stores nothing.
			dry := toUnstructured(c, c.object("pw-dry"))
			if _, err := api.Create(ctx, dry, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Fatalf("dry-run create of a valid %s rejected: %v", c.kind, err)
			}
			if _, err := api.Get(ctx, "pw-dry", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Fatalf("dry-run create stored the object (get err = %v)", err)
			}

			// Every invalid variant is rejected by the dry run with the field named in the error.
			for _, inv := range c.invalid {
				obj := c.object("pw-invalid")
				inv.mutate(obj)
				_, err := api.Create(ctx, toUnstructured(c, obj), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				if err == nil {
					t.Errorf("%s: invalid object accepted", inv.name)
					continue
				}
				if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), inv.want) {
					t.Errorf("%s: want an Invalid error mentioning %q, got %v", inv.name, inv.want, err)
				}
			}

			// Create and read back; the schema's defaults are applied by the server.
			created, err := api.Create(ctx, toUnstructured(c, c.object("pw-alice")), metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			got, err := api.Get(ctx, "pw-alice", metav1.GetOptions{})
			if err != nil {
				t.Fatalf("get: %v", err)
			}
			if got.GetUID() != created.GetUID() {
				t.Fatalf("get returned another object")
			}
			for path, want := range c.defaults {
				value, found := lookup(got.Object, path)
				if want == nil {
					if found {
						t.Errorf("%s: want unset, got %v", path, value)
					}
					continue
				}
				if !found || fmt.Sprint(value) != fmt.Sprint(want) {
					t.Errorf("default %s: want %v, got %v (found=%v)", path, want, value, found)
				}
			}
			if c.status == nil {
				return
			}

			if c.noStatusSubresource {
				withStatus := got.DeepCopy()
				withStatus.Object["status"] = c.status
				updated, err := api.Update(ctx, withStatus, metav1.UpdateOptions{})
				if err != nil {
					t.Fatalf("update with status: %v", err)
				}
				if fmt.Sprint(updated.Object["status"]) != fmt.Sprint(c.status) {
					t.Fatalf("status: want %v, got %v", c.status, updated.Object["status"])
				}
				return
			}

			// With a status subresource, status in a main-resource update is ignored...
			withStatus := got.DeepCopy()
			withStatus.Object["status"] = c.status
			updated, err := api.Update(ctx, withStatus, metav1.UpdateOptions{})
			if err != nil {
				t.Fatalf("update: %v", err)
			}
			if _, found := updated.Object["status"]; found {
				t.Fatalf("status written through the main resource: %v", updated.Object["status"])
			}
			// ...and only the status endpoint writes it, ignoring the spec sent with it (here: none at all).
			toStatus := updated.DeepCopy()
			toStatus.Object["status"] = c.status
			delete(toStatus.Object, "spec")
			statusUpdated, err := api.UpdateStatus(ctx, toStatus, metav1.UpdateOptions{})
			if err != nil {
				t.Fatalf("update status: %v", err)
			}
			final, err := api.Get(ctx, "pw-alice", metav1.GetOptions{})
			if err != nil {
				t.Fatalf("get after status update: %v", err)
			}
			if final.GetResourceVersion() != statusUpdated.GetResourceVersion() {
				t.Fatalf("resourceVersion mismatch after status update")
			}
			if fmt.Sprint(final.Object["status"]) != fmt.Sprint(c.status) {
				t.Fatalf("status: want %v, got %v", c.status, final.Object["status"])
			}
			if fmt.Sprint(final.Object["spec"]) != fmt.Sprint(updated.Object["spec"]) {
				t.Fatalf("a status update changed the spec: %v -> %v", updated.Object["spec"], final.Object["spec"])
			}
		})
	}
}

// TestConditionSchemaEnforced shows the status subresource validates what a controller writes: a Ready
// condition must carry the metav1.Condition fields, so the test controllers cannot write sloppy status.
func TestConditionSchemaEnforced(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	c := crdCases()[0]
	api := dyn.Resource(claimGVR).Namespace(ns)
	obj, err := api.Create(ctx, toUnstructured(c, c.object("pw-bob")), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	for name, cond := range map[string]map[string]any{
		"status not a bool string": {"type": "Ready", "status": "Yes", "reason": "X", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"},
		"missing reason":           {"type": "Ready", "status": "True", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"},
		"reason with spaces":       {"type": "Ready", "status": "False", "reason": "not ok", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"},
	} {
		bad := obj.DeepCopy()
		bad.Object["status"] = map[string]any{"conditions": []any{cond}}
		if _, err := api.UpdateStatus(ctx, bad, metav1.UpdateOptions{}); !apierrors.IsInvalid(err) {
			t.Errorf("%s: want Invalid, got %v", name, err)
		}
	}
	// A terminal condition as agent-sandbox writes it is accepted.
	ok := obj.DeepCopy()
	ok.Object["status"] = map[string]any{"conditions": []any{map[string]any{
		"type": "Ready", "status": "False", "reason": "WarmPoolNotFound", "message": "warm pool playwright-pool not found",
		"lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
	}}}
	if _, err := api.UpdateStatus(ctx, ok, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("terminal condition rejected: %v", err)
	}
}

// TestClaimServedAsV1alpha1 checks the old version is still served for the same stored object.
func TestClaimServedAsV1alpha1(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	c := crdCases()[0]
	if _, err := dyn.Resource(claimGVR).Namespace(ns).Create(ctx, toUnstructured(c, c.object("pw-carol")), metav1.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}
	got, err := dyn.Resource(claimV1a1GVR).Namespace(ns).Get(ctx, "pw-carol", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get as v1alpha1: %v", err)
	}
	if got.GetAPIVersion() != "extensions.agents.x-k8s.io/v1alpha1" {
		t.Fatalf("apiVersion %q", got.GetAPIVersion())
	}
}

// TestIsolaImmutableNetwork checks the CEL transition rule: spec.network cannot change after creation.
func TestIsolaImmutableNetwork(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	var c crdCase
	for _, cc := range crdCases() {
		if cc.name == "IsolaSandbox" {
			c = cc
		}
	}
	api := dyn.Resource(isolaGVR).Namespace(ns)
	obj, err := api.Create(ctx, toUnstructured(c, c.object("pw-dave")), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	spec(obj.Object)["network"].(map[string]any)["allowInternetEgress"] = false
	if _, err := api.Update(ctx, obj, metav1.UpdateOptions{}); err == nil || !strings.Contains(err.Error(), "network is immutable") {
		t.Fatalf("want the immutability rule to reject the update, got %v", err)
	}
}

// TestRolloutDryRun validates an Argo Rollout against Argo's own CRD schema.
func TestRolloutDryRun(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	rollout := func() map[string]any {
		return map[string]any{
			"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
			"metadata": map[string]any{"name": "sandcanary-proxy"},
			"spec": map[string]any{
				"replicas": int64(2),
				"selector": map[string]any{"matchLabels": map[string]any{"app": "playwright-proxy"}},
				"template": map[string]any{
					"metadata": map[string]any{"labels": map[string]any{"app": "playwright-proxy"}},
					"spec": map[string]any{"containers": []any{map[string]any{
						"name": "proxy", "image": "sandcanary/proxy:test",
					}}},
				},
				"strategy": map[string]any{"canary": map[string]any{"steps": []any{
					map[string]any{"setWeight": int64(20)}, map[string]any{"pause": map[string]any{"duration": "1m"}},
				}}},
			},
		}
	}
	api := dyn.Resource(rolloutGVR).Namespace(ns)
	if _, err := api.Create(ctx, &unstructured.Unstructured{Object: rollout()}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("valid Rollout rejected: %v", err)
	}
	bad := rollout()
	spec(bad)["replicas"] = "two"
	if _, err := api.Create(ctx, &unstructured.Unstructured{Object: bad}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); !apierrors.IsInvalid(err) {
		t.Fatalf("invalid Rollout: want Invalid, got %v", err)
	}
}
