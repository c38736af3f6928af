// Command pluginbench measures the Rust plugin against a Go plugin built from argo's rpc package,
// both driven by argo's real Go client in the same run, and prints ratios (Rust / Go):
//   - Plugin.Run and Plugin.Resume round trips (p50, p99);
//   - idle RSS after start-up;
//   - decoding the first maximal RunArgs stream (Go's encoding/gob here; the Rust figure comes from
//     the decode_bench example, run by this program).
package main

import (
	"bytes"
	"encoding/gob"
	"flag"
	"fmt"
	"log"
	"net/rpc"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	argorpc "github.com/argoproj/argo-rollouts/metricproviders/plugin/rpc"
	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"
	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sandcanary.invalid/conformance/fixture"
)

type result struct {
	runP50, runP99, resumeP50, resumeP99 time.Duration
	rssKiB                               int
}

func pct(d []time.Duration, p float64) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(p*float64(len(s)-1))]
}

func rss(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			n, _ := strconv.Atoi(strings.Fields(line)[1])
			return n
		}
	}
	return -1
}

func measure(bin string, n int) result {
	c := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: goplugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: "ARGO_ROLLOUTS_RPC_PLUGIN", MagicCookieValue: "metricprovider"},
		Plugins:         map[string]goplugin.Plugin{"RpcMetricProviderPlugin": &argorpc.RpcMetricProviderPlugin{}},
		Cmd:             exec.Command(bin),
		Managed:         true,
		Logger:          hclog.New(&hclog.LoggerOptions{Name: "plugin", Level: hclog.Error, Output: os.Stderr}),
	})
	defer c.Kill()
	cp, err := c.Client()
	if err != nil {
		log.Fatalf("%s: %v", bin, err)
	}
	raw, err := cp.Dispense("RpcMetricProviderPlugin")
	if err != nil {
		log.Fatal(err)
	}
	p := raw.(argorpc.MetricProviderPlugin)
	if e := p.InitPlugin(); e.HasError() {
		log.Fatal(e.Error())
	}
	time.Sleep(time.Second)
	var r result
	r.rssKiB = rss(c.ReattachConfig().Pid)
	metric := fixture.Metric("bench", "sandcanary/sandcanary", map[string]any{})
	run := &v1alpha1.AnalysisRun{ObjectMeta: metav1.ObjectMeta{Name: "ar", Namespace: "ns", UID: "u"}}
	started := metav1.Now()
	meas := v1alpha1.Measurement{Phase: v1alpha1.AnalysisPhaseRunning, StartedAt: &started, Metadata: map[string]string{"job": "1"}}
	for i := 0; i < n/10; i++ { // warm-up, including first-use type definitions
		p.Run(run, metric)
		p.Resume(run, metric, meas)
	}
	runs := make([]time.Duration, n)
	resumes := make([]time.Duration, n)
	for i := 0; i < n; i++ {
		t := time.Now()
		if m := p.Run(run, metric); m.Phase != v1alpha1.AnalysisPhaseSuccessful {
			log.Fatalf("Run: %q %q", m.Phase, m.Message)
		}
		runs[i] = time.Since(t)
		t = time.Now()
		p.Resume(run, metric, meas)
		resumes[i] = time.Since(t)
	}
	r.runP50, r.runP99 = pct(runs, 0.5), pct(runs, 0.99)
	r.resumeP50, r.resumeP99 = pct(resumes, 0.5), pct(resumes, 0.99)
	return r
}

// goDecode times encoding/gob decoding the golden plugin stream's first four values (the
// InitPlugin call and the first Run with the maximal RunArgs) into argo's Go types.
func goDecode(stream []byte, iters int) (time.Duration, float64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.Mallocs
	start := time.Now()
	for i := 0; i < iters; i++ {
		dec := gob.NewDecoder(bytes.NewReader(stream))
		for j := 0; j < 2; j++ {
			var req rpc.Request
			if err := dec.Decode(&req); err != nil {
				log.Fatal(err)
			}
			var body any
			if err := dec.Decode(&body); err != nil {
				log.Fatal(err)
			}
		}
	}
	el := time.Since(start) / time.Duration(iters)
	runtime.ReadMemStats(&ms)
	return el, float64(ms.Mallocs-before) / float64(iters)
}

func ratio(a, b float64) string { return fmt.Sprintf("%.2f", a/b) }

func main() {
	rustBin := flag.String("rust", "", "Rust plugin binary (release build of the conformance example)")
	goBin := flag.String("go", "", "Go trivial plugin binary")
	decodeBin := flag.String("rust-decode", "", "Rust decode_bench example binary")
	golden := flag.String("golden", "", "golden plugin_requests.gob")
	n := flag.Int("n", 2000, "round trips per method")
	flag.Parse()
	if *rustBin == "" || *goBin == "" || *decodeBin == "" || *golden == "" {
		log.Fatal("-rust, -go, -rust-decode and -golden are required")
	}
	g := measure(*goBin, *n)
	r := measure(*rustBin, *n)
	fmt.Printf("## Plugin round trips from argo's Go client (n=%d each, same run)\n\n", *n)
	fmt.Println("| metric | Rust plugin | Go plugin (baseline) | ratio Rust/Go |")
	fmt.Println("|---|---|---|---|")
	row := func(name string, a, b time.Duration) {
		fmt.Printf("| %s | %v | %v | %s |\n", name, a, b, ratio(float64(a), float64(b)))
	}
	row("Plugin.Run p50", r.runP50, g.runP50)
	row("Plugin.Run p99", r.runP99, g.runP99)
	row("Plugin.Resume p50", r.resumeP50, g.resumeP50)
	row("Plugin.Resume p99", r.resumeP99, g.resumeP99)
	fmt.Printf("| idle RSS | %d KiB | %d KiB | %s |\n", r.rssKiB, g.rssKiB, ratio(float64(r.rssKiB), float64(g.rssKiB)))

	stream, err := os.ReadFile(*golden)
	if err != nil {
		log.Fatal(err)
	}
	iters := 200
	goT, goAllocs := goDecode(stream, iters)
	out, err := exec.Command(*decodeBin, *golden, strconv.Itoa(iters)).Output()
	if err != nil {
		log.Fatalf("decode_bench: %v", err)
	}
	// decode_bench prints: "<ns per decode> <allocations per decode>"
	f := strings.Fields(string(out))
	if len(f) != 2 {
		log.Fatalf("decode_bench output %q", out)
	}
	rustNs, _ := strconv.ParseFloat(f[0], 64)
	rustAllocs, _ := strconv.ParseFloat(f[1], 64)
	fmt.Printf("\n## Decoding the first maximal RunArgs stream (%d bytes incl. all type definitions, %d iterations)\n\n", len(stream), iters)
	fmt.Println("| metric | Rust decoder | Go encoding/gob (baseline) | ratio Rust/Go |")
	fmt.Println("|---|---|---|---|")
	fmt.Printf("| time per decode | %v | %v | %s |\n", time.Duration(rustNs), goT, ratio(rustNs, float64(goT)))
	fmt.Printf("| allocations per decode | %.0f | %.0f | %s |\n", rustAllocs, goAllocs, ratio(rustAllocs, goAllocs))
}
