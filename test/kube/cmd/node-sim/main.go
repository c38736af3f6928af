// Command node-sim runs nodesim (one fake Ready node that schedules and "runs" pods) against an API server,
// so controllers that need running pods (ReplicaSets, Argo Rollouts) make progress without real nodes.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"sandcanary/test/kube/nodesim"
)

func main() {
	var opts nodesim.Options
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the API server")
	flag.StringVar(&opts.NodeName, "node-name", "sim-node", "name of the simulated node")
	flag.StringVar(&opts.Namespace, "namespace", "", "only manage pods in this namespace (default: all)")
	flag.StringVar(&opts.IPPrefix, "ip-prefix", "127.0.200.", "pods get <prefix>1..254")
	flag.DurationVar(&opts.StartDelay, "start-delay", 0, "time a bound pod stays Pending before it runs")
	flag.Parse()
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		slog.Error("kubeconfig", "err", err)
		os.Exit(1)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		slog.Error("client", "err", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := nodesim.New(client, opts).Run(ctx); err != nil {
		slog.Error("node-sim", "err", err)
		os.Exit(1)
	}
	fmt.Println("NODE_SIM_READY")
	<-ctx.Done()
}
