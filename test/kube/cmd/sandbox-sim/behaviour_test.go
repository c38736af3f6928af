package main

import (
	"testing"
	"time"
)

func TestParseBehaviour(t *testing.T) {
	good := map[string]behaviour{
		"":                          {mode: modeReady},
		"ready":                     {mode: modeReady},
		" never-ready ":             {mode: modeNeverReady},
		"dead-endpoint":             {mode: modeDeadEndpoint},
		"terminal:WarmPoolNotFound": {mode: modeTerminal, reason: "WarmPoolNotFound"},
		"delay:1500ms":              {mode: modeReady, delay: 1500 * time.Millisecond},
	}
	for in, want := range good {
		got, err := parseBehaviour(in)
		if err != nil || got != want {
			t.Errorf("parseBehaviour(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"terminal:", "terminal:two words", "delay:soon", "delay:-1s", "explode"} {
		if _, err := parseBehaviour(in); err == nil {
			t.Errorf("parseBehaviour(%q) accepted", in)
		}
	}
}

func TestIPPool(t *testing.T) {
	p := newIPPool("127.0.55.")
	a, err := p.take()
	if err != nil || a != "127.0.55.1" {
		t.Fatalf("first address %q, %v", a, err)
	}
	b, _ := p.take()
	if b != "127.0.55.2" {
		t.Fatalf("second address %q", b)
	}
	p.release(a)
	if c, _ := p.take(); c != a {
		t.Fatalf("released address not reused: %q", c)
	}
	for i := 0; i < 252; i++ {
		if _, err := p.take(); err != nil {
			t.Fatalf("take %d: %v", i, err)
		}
	}
	if _, err := p.take(); err == nil {
		t.Fatal("255th address handed out")
	}
	if _, err := newIPPool("10.0.0.").take(); err == nil {
		t.Fatal("non-loopback prefix accepted")
	}
}

func TestParseKinds(t *testing.T) {
	kinds, err := parseKinds("sandboxclaim, isola")
	if err != nil || len(kinds) != 2 || kinds[0].name != "sandboxclaim" || kinds[1].name != "isola" {
		t.Fatalf("parseKinds: %v %v", kinds, err)
	}
	for _, bad := range []string{"", " , ", "sandboxclaim,pods"} {
		if _, err := parseKinds(bad); err == nil {
			t.Errorf("parseKinds(%q) accepted", bad)
		}
	}
}
