package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/peertest"
)

// TestCorruptSegment: bytes flipped in a segment and a torn tail, as a
// crash or a bad disk leaves them: the probe starts, reports the corrupt
// regions (metric and log) and ships every record around them.
func TestCorruptSegment(t *testing.T) {
	rcv := newRWReceiver(t)
	rcv.down.Store(true)
	dir := t.TempDir()
	audit := auditURL(t)
	cfg := outageConfig(rcv.url(), audit, 0)
	p := startProbe(t, nil, cfg, dir)
	time.Sleep(1500 * time.Millisecond)
	p.stop(t)

	all, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	require.NoError(t, err)
	var segs []string
	for _, s := range all {
		if fi, err := os.Stat(s); err == nil && fi.Size() > 0 {
			segs = append(segs, s)
		}
	}
	require.NotEmpty(t, segs)
	b, err := os.ReadFile(segs[0])
	require.NoError(t, err)
	for i := len(b) / 3; i < len(b)/3+40; i++ {
		b[i] ^= 0x5a
	}
	require.NoError(t, os.WriteFile(segs[0], b, 0o644))
	last := segs[len(segs)-1]
	fi, err := os.Stat(last)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(last, fi.Size()-7))

	rcv.down.Store(false)
	p = startProbe(t, nil, cfg, dir)
	require.Positive(t, p.metric(t, "probe_queue_corrupt_bytes_total"))
	require.GreaterOrEqual(t, p.metric(t, "probe_queue_corrupt_regions_total"), 2.0)
	require.Eventually(t, func() bool { d, _ := rcv.counts(); return d > 100 }, 20*time.Second, 20*time.Millisecond)
	p.stop(t)
	require.Contains(t, p.logs.String(), "corrupt segment region skipped")
	drain(t, dir, "rw", config(outageOutputs, 0, rcv.url(), audit))

	want, got := sampled(t, dir, []string{"rw", "audit"}), rcv.keys()
	require.Greater(t, len(want), 100)
	for k := range want {
		require.True(t, got[k], "record around the corruption not shipped: %s", k)
	}
}

func auditURL(t *testing.T) string {
	audit := newRWReceiver(t)
	audit.down.Store(true)
	return audit.url()
}

// TestArm64UnderQemu: the linux/arm64 build (static, stripped, as make
// probe-cross builds it) runs under qemu-aarch64-static and ships samples.
func TestArm64UnderQemu(t *testing.T) {
	qemu := peertest.Binary(t, "qemu-aarch64-static")
	bin := filepath.Join(t.TempDir(), "probe-linux-arm64")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	fi, err := os.Stat(bin)
	require.NoError(t, err)
	t.Logf("linux/arm64 binary: %d bytes (host %s/%s)", fi.Size(), runtime.GOOS, runtime.GOARCH)

	rcv := newRWReceiver(t)
	p := startProbe(t, []string{qemu, bin}, fmt.Sprintf(`
labels: {instance: pi}
collectors:
  - {name: host, type: host, interval: 200ms, parts: [cpu, memory, load]}
outputs:
  - name: rw
    type: remote_write
    remote_write: {url: %q}
`, rcv.url()), t.TempDir())
	require.Eventually(t, func() bool {
		for k := range rcv.keys() {
			if strings.HasPrefix(k, "__name__=node_memory_MemAvailable_bytes,instance=pi@") {
				return true
			}
		}
		return false
	}, 60*time.Second, 50*time.Millisecond)
	p.stop(t)
}
