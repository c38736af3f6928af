package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
)

const defaultReadyTimeout = 90 * time.Second

type options struct {
	kubeconfig, namespace, kinds, labelKey, scriptConfigMap, server, ipPrefix string
	port, mcpPort                                                             int
	readyTimeout                                                              time.Duration
}

// kind is one simulated API: what to watch and how its controller reports readiness.
type kind struct {
	name     string
	gvr      schema.GroupVersionResource
	ready    func(s *simulator, ctx context.Context, obj *unstructured.Unstructured, ip string) error
	pending  func(obj *unstructured.Unstructured)
	terminal func(obj *unstructured.Unstructured, reason string) error
}

var allKinds = map[string]kind{
	"sandboxclaim": {
		name: "sandboxclaim",
		gvr:  schema.GroupVersionResource{Group: "extensions.agents.x-k8s.io", Version: "v1beta1", Resource: "sandboxclaims"},
		ready: func(_ *simulator, _ context.Context, obj *unstructured.Unstructured, ip string) error {
			obj.Object["status"] = map[string]any{
				"conditions": []any{condition("Ready", "True", "DependenciesReady", "sandbox is ready")},
				"sandbox":    map[string]any{"name": "sim-" + obj.GetName(), "podIPs": []any{ip}},
			}
			return nil
		},
		pending: func(obj *unstructured.Unstructured) {
			obj.Object["status"] = map[string]any{"conditions": []any{
				condition("Ready", "False", "DependenciesNotReady", "sandbox pod is not ready")}}
		},
		terminal: func(obj *unstructured.Unstructured, reason string) error {
			obj.Object["status"] = map[string]any{"conditions": []any{
				condition("Ready", "False", reason, "scripted by sandbox-sim")}}
			return nil
		},
	},
	"isola": {
		name: "isola",
		gvr:  schema.GroupVersionResource{Group: "sandbox.isola.run", Version: "v1alpha1", Resource: "sandboxes"},
		ready: func(_ *simulator, _ context.Context, obj *unstructured.Unstructured, ip string) error {
			obj.Object["status"] = map[string]any{
				"conditions": []any{condition("Ready", "True", "PodRunning", "pod is running")},
				"podIP":      ip,
			}
			return nil
		},
		pending: func(obj *unstructured.Unstructured) {
			obj.Object["status"] = map[string]any{"conditions": []any{
				condition("Ready", "False", "PodPending", "pod is pending")}}
		},
		terminal: func(obj *unstructured.Unstructured, reason string) error {
			obj.Object["status"] = map[string]any{"conditions": []any{
				condition("Ready", "False", reason, "scripted by sandbox-sim")}}
			return nil
		},
	},
	"karssandbox": {
		name: "karssandbox",
		gvr:  schema.GroupVersionResource{Group: "kars.azure.com", Version: "v1alpha1", Resource: "karssandboxes"},
		// KARS runs the sandbox in its own namespace kars-<name>; the backend lists pods labelled
		// kars.azure.com/component=sandbox there, so the simulator creates that pod with the loopback IP.
		ready: func(s *simulator, ctx context.Context, obj *unstructured.Unstructured, ip string) error {
			ns := "kars-" + obj.GetName()
			if err := s.ensureKarsPod(ctx, ns, obj.GetName(), ip); err != nil {
				return err
			}
			obj.Object["status"] = map[string]any{"phase": "Running", "namespace": ns, "sandboxPod": obj.GetName() + "-sandbox"}
			return nil
		},
		pending: func(obj *unstructured.Unstructured) {
			obj.Object["status"] = map[string]any{"phase": "Creating"}
		},
		terminal: func(obj *unstructured.Unstructured, reason string) error {
			if reason != "Failed" && reason != "Degraded" {
				return fmt.Errorf("KarsSandbox terminal phase must be Failed or Degraded, not %q", reason)
			}
			obj.Object["status"] = map[string]any{"phase": reason}
			return nil
		},
	},
}

func parseKinds(list string) ([]kind, error) {
	var kinds []kind
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		k, ok := allKinds[name]
		if !ok {
			return nil, fmt.Errorf("unknown kind %q (known: sandboxclaim, karssandbox, isola)", name)
		}
		kinds = append(kinds, k)
	}
	if len(kinds) == 0 {
		return nil, fmt.Errorf("no kinds to simulate")
	}
	return kinds, nil
}

func condition(typ, status, reason, message string) map[string]any {
	return map[string]any{
		"type": typ, "status": status, "reason": reason, "message": message,
		"lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
	}
}

// simulator owns the running sandboxes, keyed by object UID so a recreated object gets a new sandbox.
type simulator struct {
	opts options
	dyn  dynamic.Interface
	core kubernetes.Interface
	ips  *ipPool

	mu        sync.Mutex
	sandboxes map[types.UID]*sandbox
	handled   map[types.UID]bool
}

func newSimulator(opts options, dyn dynamic.Interface, core kubernetes.Interface) *simulator {
	return &simulator{
		opts: opts, dyn: dyn, core: core, ips: newIPPool(opts.ipPrefix),
		sandboxes: map[types.UID]*sandbox{}, handled: map[types.UID]bool{},
	}
}

func (s *simulator) run(ctx context.Context, kinds []kind) error {
	factory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(s.dyn, 0, s.opts.namespace, nil)
	var synced []cache.InformerSynced
	for _, k := range kinds {
		informer := factory.ForResource(k.gvr).Informer()
		_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { s.onUpsert(ctx, k, obj) },
			UpdateFunc: func(_, obj any) { s.onUpsert(ctx, k, obj) },
			DeleteFunc: func(obj any) { s.onDelete(ctx, k, obj) },
		})
		if err != nil {
			return err
		}
		synced = append(synced, informer.HasSynced)
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return fmt.Errorf("informers did not sync")
	}
	// Tests wait for this line before creating objects.
	fmt.Println("SANDBOX_SIM_READY")
	slog.Info("simulating", "namespace", s.opts.namespace, "kinds", s.opts.kinds)
	<-ctx.Done()
	return nil
}

// onUpsert starts handling an object once per UID; later updates (including our own status writes) are ignored.
func (s *simulator) onUpsert(ctx context.Context, k kind, obj any) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok || u.GetDeletionTimestamp() != nil {
		return
	}
	s.mu.Lock()
	if s.handled[u.GetUID()] {
		s.mu.Unlock()
		return
	}
	s.handled[u.GetUID()] = true
	s.mu.Unlock()
	go s.handle(ctx, k, u.DeepCopy())
}

func (s *simulator) onDelete(ctx context.Context, k kind, obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	s.mu.Lock()
	sb := s.sandboxes[u.GetUID()]
	delete(s.sandboxes, u.GetUID())
	delete(s.handled, u.GetUID())
	s.mu.Unlock()
	if sb != nil {
		sb.stop()
		s.ips.release(sb.ip)
		slog.Info("sandbox stopped", "kind", k.name, "name", u.GetName(), "ip", sb.ip)
	}
	if k.name == "karssandbox" {
		zero := int64(0)
		err := s.core.CoreV1().Pods("kars-"+u.GetName()).Delete(ctx, u.GetName()+"-sandbox", metav1.DeleteOptions{GracePeriodSeconds: &zero})
		if err != nil && !apierrors.IsNotFound(err) {
			slog.Warn("delete KARS pod", "name", u.GetName(), "err", err)
		}
	}
}

func (s *simulator) handle(ctx context.Context, k kind, obj *unstructured.Unstructured) {
	id := obj.GetLabels()[s.opts.labelKey]
	b, err := s.behaviourFor(ctx, id)
	log := slog.With("kind", k.name, "name", obj.GetName(), "id", id, "behaviour", b.String())
	if err != nil {
		log.Error("bad script; treating the sandbox as never ready", "err", err)
		b = behaviour{mode: modeNeverReady}
	}
	log.Info("handling")
	if err := s.writeStatus(ctx, k, obj, func(o *unstructured.Unstructured) error { k.pending(o); return nil }); err != nil {
		log.Warn("write pending status", "err", err)
		return
	}
	switch b.mode {
	case modeNeverReady:
		return
	case modeTerminal:
		if err := s.writeStatus(ctx, k, obj, func(o *unstructured.Unstructured) error { return k.terminal(o, b.reason) }); err != nil {
			log.Error("write terminal status", "err", err)
		}
		return
	}
	if b.delay > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(b.delay):
		}
	}
	ip, err := s.ips.take()
	if err != nil {
		log.Error("no free address", "err", err)
		return
	}
	if b.mode == modeReady {
		sb, err := startSandbox(ctx, s.opts, ip)
		if err != nil {
			s.ips.release(ip)
			log.Error("sandbox server did not start", "err", err)
			_ = s.writeStatus(ctx, k, obj, func(o *unstructured.Unstructured) error { k.pending(o); return nil })
			return
		}
		s.mu.Lock()
		if !s.handled[obj.GetUID()] { // deleted while starting
			s.mu.Unlock()
			sb.stop()
			s.ips.release(ip)
			return
		}
		s.sandboxes[obj.GetUID()] = sb
		s.mu.Unlock()
	} else {
		// dead-endpoint: report ready on an address nothing listens on; keep the address reserved.
		s.mu.Lock()
		s.sandboxes[obj.GetUID()] = &sandbox{ip: ip}
		s.mu.Unlock()
	}
	if err := s.writeStatus(ctx, k, obj, func(o *unstructured.Unstructured) error { return k.ready(s, ctx, o, ip) }); err != nil {
		log.Error("write ready status", "err", err)
		return
	}
	log.Info("sandbox ready", "ip", ip, "port", s.opts.port)
}

// writeStatus re-reads the object and writes the status set by mutate, retrying on conflicts. A deleted
// object is not an error.
func (s *simulator) writeStatus(ctx context.Context, k kind, obj *unstructured.Unstructured, mutate func(*unstructured.Unstructured) error) error {
	api := s.dyn.Resource(k.gvr).Namespace(obj.GetNamespace())
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		cur, err := api.Get(ctx, obj.GetName(), metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.GetUID() != obj.GetUID() {
			return apierrors.NewNotFound(k.gvr.GroupResource(), obj.GetName())
		}
		if err := mutate(cur); err != nil {
			return err
		}
		_, err = api.UpdateStatus(ctx, cur, metav1.UpdateOptions{FieldManager: "sandbox-sim"})
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func (s *simulator) ensureKarsPod(ctx context.Context, ns, name, ip string) error {
	_, err := s.core.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns, Labels: map[string]string{"kars.azure.com/role": "sandbox"},
	}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", ns, err)
	}
	pods := s.core.CoreV1().Pods(ns)
	pod, err := pods.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-sandbox", Labels: map[string]string{
			"kars.azure.com/component": "sandbox", "kars.azure.com/sandbox": name,
		}},
		Spec: corev1.PodSpec{NodeName: "sandbox-sim", Containers: []corev1.Container{{Name: "agent", Image: "sandcanary/sandbox:sim"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create KARS pod: %w", err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
	_, err = pods.UpdateStatus(ctx, pod, metav1.UpdateOptions{FieldManager: "sandbox-sim"})
	return err
}

func (s *simulator) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for uid, sb := range s.sandboxes {
		sb.stop()
		delete(s.sandboxes, uid)
	}
}
