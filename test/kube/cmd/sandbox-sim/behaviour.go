package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

type mode int

const (
	modeReady        mode = iota // start a real sandbox server, then report ready
	modeNeverReady               // report not-ready forever (the proxy's ENSURE_TIMEOUT path)
	modeTerminal                 // report a terminal reason (fail-fast path)
	modeDeadEndpoint             // report ready on an address where nothing listens (dial-failure path)
)

// behaviour is what the simulator does for one sandbox id, read from the script ConfigMap.
type behaviour struct {
	mode   mode
	reason string        // modeTerminal
	delay  time.Duration // extra wait before a ready/dead-endpoint report
}

func (b behaviour) String() string {
	switch b.mode {
	case modeNeverReady:
		return "never-ready"
	case modeTerminal:
		return "terminal:" + b.reason
	case modeDeadEndpoint:
		return fmt.Sprintf("dead-endpoint(delay %s)", b.delay)
	default:
		return fmt.Sprintf("ready(delay %s)", b.delay)
	}
}

// parseBehaviour reads one script entry:
//
//	"" | "ready"         real sandbox, ready as soon as it listens
//	"delay:<duration>"   real sandbox, ready no earlier than <duration> after the object appeared
//	"never-ready"        stays not ready
//	"terminal:<Reason>"  not ready with a terminal reason (KARS: "terminal:Failed" or "terminal:Degraded")
//	"dead-endpoint"      ready, but the address has no listener
func parseBehaviour(s string) (behaviour, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "" || s == "ready":
		return behaviour{mode: modeReady}, nil
	case s == "never-ready":
		return behaviour{mode: modeNeverReady}, nil
	case s == "dead-endpoint":
		return behaviour{mode: modeDeadEndpoint}, nil
	case strings.HasPrefix(s, "terminal:"):
		reason := strings.TrimPrefix(s, "terminal:")
		if reason == "" || strings.ContainsAny(reason, " \t") {
			return behaviour{}, fmt.Errorf("terminal needs a reason without spaces, got %q", s)
		}
		return behaviour{mode: modeTerminal, reason: reason}, nil
	case strings.HasPrefix(s, "delay:"):
		d, err := time.ParseDuration(strings.TrimPrefix(s, "delay:"))
		if err != nil || d < 0 {
			return behaviour{}, fmt.Errorf("bad delay in %q", s)
		}
		return behaviour{mode: modeReady, delay: d}, nil
	}
	return behaviour{}, fmt.Errorf("unknown behaviour %q", s)
}

// behaviourFor looks the id up in the script ConfigMap; a missing ConfigMap or key means "ready".
func (s *simulator) behaviourFor(ctx context.Context, id string) (behaviour, error) {
	if id == "" {
		return behaviour{mode: modeReady}, nil
	}
	cm, err := s.core.CoreV1().ConfigMaps(s.opts.namespace).Get(ctx, s.opts.scriptConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return behaviour{mode: modeReady}, nil
	}
	if err != nil {
		return behaviour{}, err
	}
	// ConfigMap keys allow [-._a-zA-Z0-9]; ids that are not valid keys simply cannot be scripted.
	return parseBehaviour(cm.Data[id])
}
