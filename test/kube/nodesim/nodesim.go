// Package nodesim stands in for kube-scheduler and a kubelet so workloads (ReplicaSets created by Argo
// Rollouts or Deployments) get running pods on an API server without real nodes: it registers one Ready
// node, binds unscheduled pods to it, reports them Running and Ready on a loopback address, and completes
// their graceful deletion. No containers run; tests that need a live endpoint point it elsewhere.
package nodesim

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Options configure the simulated node.
type Options struct {
	NodeName  string // default "sim-node"
	Namespace string // pods to manage; "" means all namespaces
	IPPrefix  string // pods get <prefix>1..254; default "127.0.200."
	// StartDelay is how long a bound pod stays Pending before it runs (a kubelet starting containers).
	StartDelay time.Duration
}

// Sim is a running node simulator.
type Sim struct {
	opts   Options
	client kubernetes.Interface

	mu   sync.Mutex
	ips  map[types.UID]string
	used map[string]bool
}

// New prepares a simulator; Run starts it.
func New(client kubernetes.Interface, opts Options) *Sim {
	if opts.NodeName == "" {
		opts.NodeName = "sim-node"
	}
	if opts.IPPrefix == "" {
		opts.IPPrefix = "127.0.200."
	}
	return &Sim{opts: opts, client: client, ips: map[types.UID]string{}, used: map[string]bool{}}
}

// Run registers the node and manages pods until ctx ends. It returns once the pod watch has synced
// (ready is closed then) or on error; work continues in the background until ctx is done.
func (s *Sim) Run(ctx context.Context) error {
	if err := s.registerNode(ctx); err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactoryWithOptions(s.client, 0, informers.WithNamespace(s.opts.Namespace))
	pods := factory.Core().V1().Pods().Informer()
	_, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.onPod(ctx, obj) },
		UpdateFunc: func(_, obj any) { s.onPod(ctx, obj) },
		DeleteFunc: func(obj any) { s.onGone(obj) },
	})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), pods.HasSynced) {
		return fmt.Errorf("pod watch did not sync")
	}
	go s.heartbeat(ctx)
	return nil
}

func (s *Sim) registerNode(ctx context.Context) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: s.opts.NodeName, Labels: map[string]string{
			"kubernetes.io/hostname": s.opts.NodeName, "kubernetes.io/os": "linux", "type": "sandcanary-sim",
		}},
	}
	_, err := s.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("register node: %w", err)
	}
	return s.updateNodeStatus(ctx)
}

func (s *Sim) updateNodeStatus(ctx context.Context) error {
	node, err := s.client.CoreV1().Nodes().Get(ctx, s.opts.NodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	capacity := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods: resource.MustParse("1000"),
	}
	node.Status.Capacity, node.Status.Allocatable = capacity, capacity
	node.Status.Conditions = []corev1.NodeCondition{{
		Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
		Message: "simulated by sandcanary nodesim", LastHeartbeatTime: now, LastTransitionTime: now,
	}}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	_, err = s.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

func (s *Sim) heartbeat(ctx context.Context) {
	ticker := time.NewTicker(10 * time.Second)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			if err := s.updateNodeStatus(ctx); err != nil && ctx.Err() == nil {
				slog.Warn("node heartbeat", "err", err)
			}
		}
	}
}

// onPod moves a pod one step: bind it, start it, or finish its deletion.
func (s *Sim) onPod(ctx context.Context, obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	switch {
	case pod.Spec.NodeName == "" && pod.DeletionTimestamp == nil:
		go s.bind(ctx, pod)
	case pod.Spec.NodeName != s.opts.NodeName:
		return
	case pod.DeletionTimestamp != nil:
		go s.finishDeletion(ctx, pod)
	case pod.Status.Phase == corev1.PodPending || pod.Status.Phase == "":
		go s.start(ctx, pod)
	}
}

func (s *Sim) onGone(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		s.mu.Lock()
		if ip, ok := s.ips[pod.UID]; ok {
			delete(s.used, ip)
			delete(s.ips, pod.UID)
		}
		s.mu.Unlock()
	}
}

func (s *Sim) bind(ctx context.Context, pod *corev1.Pod) {
	binding := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: s.opts.NodeName},
	}
	err := s.client.CoreV1().Pods(pod.Namespace).Bind(ctx, binding, metav1.CreateOptions{})
	if err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		slog.Warn("bind pod", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
}

func (s *Sim) ip(uid types.UID) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ip, ok := s.ips[uid]; ok {
		return ip, nil
	}
	for i := 1; i <= 254; i++ {
		ip := s.opts.IPPrefix + strconv.Itoa(i)
		if !s.used[ip] {
			s.used[ip] = true
			s.ips[uid] = ip
			return ip, nil
		}
	}
	return "", fmt.Errorf("no free pod address under %s", s.opts.IPPrefix)
}

func (s *Sim) start(ctx context.Context, pod *corev1.Pod) {
	if s.opts.StartDelay > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.opts.StartDelay):
		}
	}
	ip, err := s.ip(pod.UID)
	if err != nil {
		slog.Error("start pod", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		return
	}
	cur, err := s.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil || cur.UID != pod.UID || cur.Status.Phase == corev1.PodRunning {
		return
	}
	now := metav1.Now()
	cur.Status.Phase = corev1.PodRunning
	cur.Status.HostIP, cur.Status.HostIPs = "127.0.0.1", []corev1.HostIP{{IP: "127.0.0.1"}}
	cur.Status.PodIP, cur.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
	cur.Status.StartTime = &now
	cur.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	cur.Status.ContainerStatuses = nil
	for _, c := range cur.Spec.Containers {
		started := true
		cur.Status.ContainerStatuses = append(cur.Status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: "sim://" + c.Image, ContainerID: "sim://" + string(pod.UID) + "/" + c.Name,
			Ready: true, Started: &started, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	if _, err := s.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil &&
		!apierrors.IsConflict(err) && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		slog.Warn("start pod", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
}

// finishDeletion is the kubelet's part of a graceful delete: containers are gone, remove the object.
func (s *Sim) finishDeletion(ctx context.Context, pod *corev1.Pod) {
	zero := int64(0)
	err := s.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &zero, Preconditions: &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && ctx.Err() == nil {
		slog.Warn("finish pod deletion", "pod", pod.Namespace+"/"+pod.Name, "err", err)
	}
}
