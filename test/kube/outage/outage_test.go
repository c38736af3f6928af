// Package outage checks the API server can be taken down and brought back mid-test (same address,
// credentials and data), and that a client-go watch resumes afterwards: the basis of the proxy's
// API-outage tests.
package outage

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"sandcanary/test/kube/kubeenv"
)

func TestAPIServerRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env, err := kubeenv.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	}()
	client, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	pods := client.CoreV1().Pods("default")
	pod := func(name string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"playwright-id": name}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}},
		}
	}
	if _, err := pods.Create(ctx, pod("before"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// An informer, like the proxy's pod reflector, sees objects before and after the outage.
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace("default"))
	informer := factory.Core().V1().Pods().Informer()
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		t.Fatal("informer did not sync")
	}

	if err := env.StopAPIServer(); err != nil {
		t.Fatalf("stop-apiserver: %v", err)
	}
	_, err = pods.Get(ctx, "before", metav1.GetOptions{})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		var opErr *net.OpError
		if !errors.As(err, &opErr) {
			t.Fatalf("during the outage: want connection refused, got %v", err)
		}
	}
	// The cache keeps its last state while the server is down.
	if _, exists, _ := informer.GetStore().GetByKey("default/before"); !exists {
		t.Fatal("informer cache lost its state during the outage")
	}

	restartBegan := time.Now()
	if err := env.StartAPIServer(); err != nil {
		t.Fatalf("start-apiserver: %v", err)
	}
	restarted := time.Now()
	if _, err := pods.Get(ctx, "before", metav1.GetOptions{}); err != nil {
		t.Fatalf("data lost across the restart: %v", err)
	}
	if _, err := pods.Create(ctx, pod("after"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// client-go's reflector reconnects with backoff; allow generously for it.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, exists, _ := informer.GetStore().GetByKey("default/after"); exists {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the informer did not see a pod created after the restart")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("restart took %s, informer caught up %s later", restarted.Sub(restartBegan), time.Since(restarted))
}
