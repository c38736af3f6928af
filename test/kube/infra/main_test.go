package infra

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"sandcanary/test/kube/kubeenv"
)

var (
	env     *kubeenv.Env
	dyn     dynamic.Interface
	clients kubernetes.Interface
)

// TestMain starts one API server for the package, installs every CRD and always stops the server again.
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var err error
	env, err = kubeenv.Start(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start API server:", err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop API server:", err)
		}
	}()
	if err := setup(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		return 1
	}
	return m.Run()
}

func setup(ctx context.Context) error {
	var err error
	if dyn, err = dynamic.NewForConfig(env.Config); err != nil {
		return err
	}
	if clients, err = kubernetes.NewForConfig(env.Config); err != nil {
		return err
	}
	ours, err := kubeenv.ProjectCRDFiles()
	if err != nil {
		return err
	}
	argo, err := kubeenv.ArgoCRDFiles(ctx)
	if err != nil {
		return err
	}
	crds, err := kubeenv.ReadCRDs(append(ours, argo...)...)
	if err != nil {
		return err
	}
	return kubeenv.InstallCRDs(ctx, env.Config, crds)
}
