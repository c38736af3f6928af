package conformance

import (
	"bytes"
	"encoding/gob"
	"net/rpc"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/argoproj/argo-rollouts/utils/plugin/types"
)

// TestGoldenRustReplies decodes what the Rust reply encoder wrote into the exact Go types the
// host uses, on one gob stream (so type definitions are sent once and reused).
func TestGoldenRustReplies(t *testing.T) {
	out := filepath.Join(t.TempDir(), "replies.gob")
	if b, err := exec.Command(pluginBinary(t, "GOPLUGIN_REPLIES_BIN"), out).CombinedOutput(); err != nil {
		t.Fatalf("gobreplies: %v\n%s", err, b)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	dec := gob.NewDecoder(bytes.NewReader(raw))
	header := func(seq uint64, method, errText string) {
		t.Helper()
		var r rpc.Response
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("header %d: %v", seq, err)
		}
		if r.Seq != seq || r.ServiceMethod != method || r.Error != errText {
			t.Fatalf("header %d = %+v", seq, r)
		}
	}
	body := func(v any) {
		t.Helper()
		if err := dec.Decode(v); err != nil {
			t.Fatalf("body %T: %v", v, err)
		}
	}
	t0 := time.Unix(1704067200, 123456789).UTC()

	header(0, "Plugin.InitPlugin", "")
	var e types.RpcError
	body(&e)
	if e.HasError() {
		t.Fatalf("InitPlugin error %q", e.ErrorString)
	}

	header(1, "Plugin.Run", "")
	var m v1alpha1.Measurement
	body(&m)
	if m.Phase != v1alpha1.AnalysisPhaseSuccessful || m.Message != "ok" || m.Value != "0.95" || m.Metadata["k"] != "v" ||
		!m.StartedAt.Time.Equal(t0) || m.StartedAt.Location() != time.UTC || !m.FinishedAt.Time.Equal(t0.Add(5*time.Second)) || m.ResumeAt != nil {
		t.Fatalf("Run measurement %+v", m)
	}

	header(2, "Plugin.Resume", "")
	m = v1alpha1.Measurement{}
	body(&m)
	if m.Phase != v1alpha1.AnalysisPhaseRunning || m.FinishedAt != nil || m.Metadata["job"] != "42" ||
		m.ResumeAt == nil || !m.ResumeAt.Time.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("Resume measurement %+v", m)
	}
	if _, off := m.ResumeAt.Zone(); off != 0 {
		t.Fatalf("zone offset %d", off)
	}

	header(3, "Plugin.GarbageCollect", "")
	e = types.RpcError{}
	body(&e)
	if e.ErrorString != "boom" {
		t.Fatalf("GC error %q", e.ErrorString)
	}

	header(4, "Plugin.Type", "")
	var s string
	body(&s)
	if s != "RPCPlugin" {
		t.Fatalf("Type %q", s)
	}

	header(5, "Plugin.GetMetadata", "")
	var md map[string]string
	body(&md)
	if len(md) != 1 || md["a"] != "b" {
		t.Fatalf("metadata %v", md)
	}
	header(6, "Plugin.GetMetadata", "")
	md = nil
	body(&md)
	if len(md) != 0 {
		t.Fatalf("empty metadata %v", md)
	}

	header(7, "Plugin.Nope", "rpc: can't find method Plugin.Nope")
	body(&struct{}{})

	header(8, "Dispenser.Dispense", "")
	var id uint32
	body(&id)
	if id != 1 {
		t.Fatalf("broker id %d", id)
	}

	header(9, "Control.Ping", "")
	body(&struct{}{})

	header(10, "Plugin.Run", "")
	m = v1alpha1.Measurement{}
	body(&m)
	if m.Phase != v1alpha1.AnalysisPhaseError || m.Message != "bad" || m.FinishedAt == nil {
		t.Fatalf("error measurement %+v", m)
	}
	var extra any
	if err := dec.Decode(&extra); err == nil {
		t.Fatalf("trailing data: %v", extra)
	}
}
