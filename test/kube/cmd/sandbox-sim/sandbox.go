package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ipPool hands out distinct loopback addresses so every sandbox listens on the same port, as pods would.
type ipPool struct {
	prefix string
	mu     sync.Mutex
	used   map[string]bool
}

func newIPPool(prefix string) *ipPool { return &ipPool{prefix: prefix, used: map[string]bool{}} }

func (p *ipPool) take() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 1; i <= 254; i++ {
		ip := p.prefix + strconv.Itoa(i)
		if !p.used[ip] {
			if parsed := net.ParseIP(ip); parsed == nil || !parsed.IsLoopback() {
				return "", fmt.Errorf("%s is not a loopback address", ip)
			}
			p.used[ip] = true
			return ip, nil
		}
	}
	return "", fmt.Errorf("all 254 addresses under %s are in use", p.prefix)
}

func (p *ipPool) release(ip string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.used, ip)
}

// sandbox is one running server.js (its own process group, so Chromium dies with it).
type sandbox struct {
	ip   string
	cmd  *exec.Cmd
	done chan struct{}
}

func startSandbox(ctx context.Context, opts options, ip string) (*sandbox, error) {
	cmd := exec.Command("node", opts.server)
	cmd.Env = append(os.Environ(), "HOST="+ip, "PORT="+strconv.Itoa(opts.port))
	if opts.mcpPort > 0 {
		cmd.Env = append(cmd.Env, "MCP_PORT="+strconv.Itoa(opts.mcpPort))
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node %s: %w", opts.server, err)
	}
	sb := &sandbox{ip: ip, cmd: cmd, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.HasPrefix(sc.Text(), "SANDBOX_READY ") {
				close(ready)
				signalled = true
			}
		}
		_ = cmd.Wait()
		close(sb.done)
	}()
	select {
	case <-ready:
		return sb, nil
	case <-sb.done:
		return nil, fmt.Errorf("sandbox server on %s exited before it was ready", ip)
	case <-time.After(opts.readyTimeout):
	case <-ctx.Done():
	}
	sb.stop()
	return nil, fmt.Errorf("sandbox server on %s not ready within %s", ip, opts.readyTimeout)
}

// stop sends SIGTERM to the sandbox's process group and SIGKILL if it is still there after 5 s.
func (sb *sandbox) stop() {
	if sb.cmd == nil || sb.cmd.Process == nil {
		return
	}
	pgid := sb.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-sb.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-sb.done
	}
	// Chromium children may outlive node's exit by a moment; make sure the group is gone.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}
