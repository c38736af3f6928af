package conformance

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/argoproj/argo-rollouts/pkg/apis/rollouts/v1alpha1"

	"sandcanary.invalid/conformance/fixture"
)

// TestC10Idle leaves a launched plugin idle across yamux keepalives (every 30 s, answer within
// 10 s) and the 75 s stream-open deadline of streams 3 and 5, then calls it.
func TestC10Idle(t *testing.T) {
	idle := 90 * time.Second
	if s := os.Getenv("GOPLUGIN_IDLE_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 31 {
			t.Fatalf("GOPLUGIN_IDLE_SECONDS=%q: want an integer >= 31 (one keepalive)", s)
		}
		idle = time.Duration(n) * time.Second
	}
	t.Parallel()
	l := launch(t)
	time.Sleep(idle)
	if l.client.Exited() {
		t.Fatalf("plugin exited while idle:\n%s", l.logs.String())
	}
	if err := l.protocol.Ping(); err != nil {
		t.Fatalf("Ping after %v idle: %v", idle, err)
	}
	if m := l.plugin.Run(smallRun(), fixture.Metric("idle", key, map[string]any{})); m.Phase != v1alpha1.AnalysisPhaseSuccessful {
		t.Fatalf("Run after idle: %q %q", m.Phase, m.Message)
	}
	for _, bad := range []string{"keepalive failed", "[ERR] yamux", "timeout"} {
		if strings.Contains(l.logs.String(), bad) {
			t.Fatalf("host log mentions %q:\n%s", bad, l.logs.String())
		}
	}
}

// Raw yamux frames (12-byte big-endian header) for TestC16RawYamux.
const (
	typeData   = 0
	typeWindow = 1
	typePing   = 2
	typeGoAway = 3
	flagSYN    = 1
	flagACK    = 2
	flagFIN    = 4
	flagRST    = 8
)

type frame struct {
	typ, flags   uint16
	stream, size uint32
	data         []byte
}

func writeFrame(t *testing.T, c net.Conn, f frame) {
	t.Helper()
	h := make([]byte, 12, 12+len(f.data))
	h[1] = byte(f.typ)
	binary.BigEndian.PutUint16(h[2:], f.flags)
	binary.BigEndian.PutUint32(h[4:], f.stream)
	binary.BigEndian.PutUint32(h[8:], f.size)
	if _, err := c.Write(append(h, f.data...)); err != nil {
		t.Fatalf("write frame: %v", err)
	}
}

func readFrame(c net.Conn, within time.Duration) (frame, error) {
	_ = c.SetReadDeadline(time.Now().Add(within))
	h := make([]byte, 12)
	if _, err := io.ReadFull(c, h); err != nil {
		return frame{}, err
	}
	f := frame{typ: uint16(h[1]), flags: binary.BigEndian.Uint16(h[2:]), stream: binary.BigEndian.Uint32(h[4:]), size: binary.BigEndian.Uint32(h[8:])}
	if f.typ == typeData && f.size > 0 {
		f.data = make([]byte, f.size)
		if _, err := io.ReadFull(c, f.data); err != nil {
			return frame{}, err
		}
	}
	return f, nil
}

// expect reads frames until one matches, failing after the deadline.
func expect(t *testing.T, c net.Conn, within time.Duration, what string, match func(frame) bool) frame {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		f, err := readFrame(c, time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(f) {
			return f
		}
	}
}

// startRaw runs the plugin binary by hand and dials its socket, with no go-plugin client.
func startRaw(t *testing.T) (*exec.Cmd, net.Conn, string) {
	t.Helper()
	cmd := exec.Command(pluginBinary(t, "PLUGIN_BIN"))
	cmd.Env = append(os.Environ(), "ARGO_ROLLOUTS_RPC_PLUGIN=metricprovider")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("handshake line: %v", err)
	}
	parts := strings.Split(strings.TrimSpace(line), "|")
	if len(parts) < 5 || parts[0] != "1" || parts[1] != "1" || parts[2] != "unix" || parts[4] != "netrpc" {
		t.Fatalf("handshake line %q", line)
	}
	c, err := net.Dial("unix", parts[3])
	if err != nil {
		t.Fatalf("dial right after the handshake: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return cmd, c, parts[3]
}

func TestC16RawYamux(t *testing.T) {
	cmd, c, sock := startRaw(t)

	// Streams opened with no data are ACKed at once (streams 3 and 5 are never written to).
	for _, id := range []uint32{1, 3, 5} {
		writeFrame(t, c, frame{typ: typeWindow, flags: flagSYN, stream: id})
		expect(t, c, time.Second, "ACK of stream "+strconv.Itoa(int(id)), func(f frame) bool {
			return f.stream == id && f.flags&flagACK != 0
		})
	}
	// A SYN ping is echoed with ACK and the same opaque value.
	writeFrame(t, c, frame{typ: typePing, flags: flagSYN, size: 0xC0FFEE})
	expect(t, c, time.Second, "ping ACK", func(f frame) bool {
		return f.typ == typePing && f.flags&flagACK != 0 && f.size == 0xC0FFEE
	})
	// A stream reset by the host does not disturb the session.
	writeFrame(t, c, frame{typ: typeWindow, flags: flagSYN, stream: 9})
	expect(t, c, time.Second, "ACK of stream 9", func(f frame) bool { return f.stream == 9 && f.flags&flagACK != 0 })
	writeFrame(t, c, frame{typ: typeWindow, flags: flagRST, stream: 9})
	// A half-closed stream is answered with FIN once the plugin is done with it.
	writeFrame(t, c, frame{typ: typeWindow, flags: flagSYN, stream: 11})
	writeFrame(t, c, frame{typ: typeWindow, flags: flagFIN, stream: 11})
	expect(t, c, 7*time.Second, "FIN on stream 11", func(f frame) bool {
		return f.stream == 11 && f.flags&(flagFIN|flagRST) != 0
	})
	writeFrame(t, c, frame{typ: typePing, flags: flagSYN, size: 2})
	expect(t, c, time.Second, "ping ACK after RST/FIN", func(f frame) bool {
		return f.typ == typePing && f.flags&flagACK != 0 && f.size == 2
	})
	// GoAway: the plugin stops and removes its socket.
	writeFrame(t, c, frame{typ: typeGoAway})
	c.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("plugin exit after GoAway: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("plugin still running 5 s after GoAway and close")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}
