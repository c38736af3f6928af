// Command pause is the pod sandbox's process (what registry.k8s.io/pause does): it holds the pod's
// namespaces open, reaps orphans when it is PID 1 of a shared PID namespace, and exits on SIGINT/SIGTERM.
// Built static and packed into the local image containerd's sandbox_image names, since no registry is
// reachable here.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
