// Package golden writes the gob streams argo's Go client produces, so the Rust decoder can be
// tested against real Go output without a Go toolchain, and describes what each stream holds.
package golden

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"net/rpc"
	"time"

	argorpc "github.com/argoproj/argo-rollouts/metricproviders/plugin/rpc"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/argoproj/argo-rollouts/utils/plugin/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sandcanary.invalid/conformance/fixture"
)

// Call is one request in a stream and the facts the Rust side must read back from it.
type Call struct {
	Method string            `json:"method"`
	Seq    uint64            `json:"seq"`
	Expect map[string]string `json:"expect"`
}

// Streams holds every generated file by name.
type Streams struct {
	Files map[string][]byte
	Calls map[string][]Call
}

// MaximalConfig is the plugin JSON inside the maximal fixture.
var MaximalConfig = map[string]any{"scenarios": []string{"cold", "warm"}, "n": 3}

// resumeMeasurement has nanosecond times in UTC and in a fixed zone.
func resumeMeasurement() v1alpha1.Measurement {
	s := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 999999999, time.UTC))
	r := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 15, 1, time.FixedZone("", -3*3600)))
	return v1alpha1.Measurement{Phase: v1alpha1.AnalysisPhaseRunning, Message: "m", StartedAt: &s, ResumeAt: &r,
		Value: "0.5", Metadata: map[string]string{"sandcanary.handle": "h1"}}
}

func encodeCall(enc *gob.Encoder, method string, seq uint64, args any) {
	if err := enc.Encode(&rpc.Request{ServiceMethod: method, Seq: seq}); err != nil {
		panic(err)
	}
	if err := enc.Encode(args); err != nil {
		panic(err)
	}
}

// Generate builds the streams.
func Generate() Streams {
	out := Streams{Files: map[string][]byte{}, Calls: map[string][]Call{}}

	// Stream 1: the control stream as the host writes it.
	var s1 bytes.Buffer
	enc := gob.NewEncoder(&s1)
	encodeCall(enc, "Dispenser.Dispense", 0, "RpcMetricProviderPlugin")
	encodeCall(enc, "Control.Ping", 1, true)
	encodeCall(enc, "Control.Quit", 300, true)
	out.Files["control_requests.gob"] = s1.Bytes()
	out.Calls["control_requests.gob"] = []Call{
		{Method: "Dispenser.Dispense", Seq: 0, Expect: map[string]string{"string": "RpcMetricProviderPlugin"}},
		{Method: "Control.Ping", Seq: 1, Expect: map[string]string{"bool": "true"}},
		{Method: "Control.Quit", Seq: 300, Expect: map[string]string{"bool": "true"}},
	}

	// Stream 7: every Plugin method, the first Run carrying the maximal fixture.
	metric := fixture.MaximalMetric("sandcanary/sandcanary", MaximalConfig)
	run := fixture.MaximalRun(metric, 0)
	cfg, _ := json.Marshal(MaximalConfig)
	var s7 bytes.Buffer
	enc = gob.NewEncoder(&s7)
	var calls []Call
	seq := uint64(0)
	add := func(method string, args any, expect map[string]string) {
		encodeCall(enc, method, seq, args)
		calls = append(calls, Call{Method: method, Seq: seq, Expect: expect})
		seq++
	}
	add("Plugin.InitPlugin", new(any), map[string]string{"nil": "true"})
	runExpect := map[string]string{
		"run.name": "ar-1", "run.namespace": "ns1", "run.uid": "uid-123", "run.rollout": "web",
		"run.created": fixture.Created.Format(time.RFC3339Nano), "run.args": "3", "run.measurements": "10",
		"metric.name": "maximal", "metric.config": string(cfg), "metric.count": "3", "metric.failureLimit": "-1",
	}
	var a any = argorpc.RunArgs{AnalysisRun: run, Metric: metric}
	add("Plugin.Run", &a, runExpect)
	add("Plugin.Run", &a, runExpect) // steady state: no type definitions
	var nilRun any = argorpc.RunArgs{Metric: metric}
	add("Plugin.Run", &nilRun, map[string]string{"run": "nil", "metric.name": "maximal"})
	m := resumeMeasurement()
	var r any = argorpc.TerminateAndResumeArgs{AnalysisRun: run, Metric: metric, Measurement: m}
	measExpect := map[string]string{"measurement.phase": "Running", "measurement.startedAt": m.StartedAt.Format(time.RFC3339Nano),
		"measurement.resumeAt": m.ResumeAt.UTC().Format(time.RFC3339Nano), "measurement.handle": "h1", "run.name": "ar-1"}
	add("Plugin.Resume", &r, measExpect)
	add("Plugin.Terminate", &r, measExpect)
	var g any = argorpc.GarbageCollectArgs{AnalysisRun: run, Metric: metric, Limit: 10}
	add("Plugin.GarbageCollect", &g, map[string]string{"limit": "10", "run.name": "ar-1"})
	add("Plugin.Type", new(any), map[string]string{"nil": "true"})
	var md any = argorpc.GetMetadataArgs{Metric: metric}
	add("Plugin.GetMetadata", &md, map[string]string{"metric.name": "maximal", "metric.config": string(cfg)})
	out.Files["plugin_requests.gob"] = s7.Bytes()
	out.Calls["plugin_requests.gob"] = calls

	// The replies Go's own plugin server sends, for the Rust decoder's sake.
	var rs bytes.Buffer
	enc = gob.NewEncoder(&rs)
	fin := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 20, 5, time.UTC))
	done := m
	done.Phase, done.FinishedAt, done.ResumeAt = v1alpha1.AnalysisPhaseSuccessful, &fin, nil
	for i, body := range []any{&done, &types.RpcError{}, new(string), &map[string]string{"a": "b"}} {
		if err := enc.Encode(&rpc.Response{ServiceMethod: "Plugin.X", Seq: uint64(i)}); err != nil {
			panic(err)
		}
		if err := enc.Encode(body); err != nil {
			panic(err)
		}
	}
	out.Files["go_replies.gob"] = rs.Bytes()
	return out
}
