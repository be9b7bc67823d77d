package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// outageConfig samples load and memory every 100 ms and ships to rw; the
// audit output's receiver is always down, so the queue keeps every record
// for the test to compare with what rw received.
func outageConfig(rw, audit string, rate int) string {
	return config(`
labels: {instance: test}
queue: {sync_interval: 50ms, segment_bytes: 16384}
collectors:
  - {name: host, type: host, interval: 100ms, parts: [load, memory]}
`+outageOutputs, rate, rw, audit)
}

// outageOutputs ship to rw (flushing every 100 ms) and to audit.
const outageOutputs = `outputs:
  - name: rw
    type: remote_write
    batch_samples: 100
    backlog_rate: %d
    flush_interval: 100ms
    remote_write: {url: %q, timeout: 2s}
  - name: audit
    type: remote_write
    remote_write: {url: %q, timeout: 2s}
`

// drain runs the probe on dir with outputs (YAML) and nothing to sample
// until output has shipped its whole backlog, then stops it: what a
// running probe sampled last is shipped too, deterministically.
func drain(t *testing.T, dir, output, outputs string) {
	t.Helper()
	empty := filepath.Join(t.TempDir(), "empty.prom")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	p := startProbe(t, nil, config(`
collectors:
  - {name: none, type: file, path: %q, interval: 1s}
`, empty)+outputs, dir)
	require.Eventually(t, func() bool { return p.metric(t, "probe_queue_buffered_samples", "output", output) == 0 }, 60*time.Second, 20*time.Millisecond)
	p.stop(t)
}

// TestOutageAndKill: the receiver goes down, the probe is killed with
// SIGKILL during the outage and again while it drains the backlog; in
// the end the receiver has every sample the probe sampled, and at most
// the batches in flight at the kills twice.
func TestOutageAndKill(t *testing.T) {
	rcv, audit := newRWReceiver(t), newRWReceiver(t)
	audit.down.Store(true)
	dir := t.TempDir()
	cfg := outageConfig(rcv.url(), audit.url(), 300)
	p := startProbe(t, nil, cfg, dir)
	require.Eventually(t, func() bool { d, _ := rcv.counts(); return d > 50 }, 10*time.Second, 10*time.Millisecond)

	rcv.down.Store(true)
	time.Sleep(1500 * time.Millisecond)
	p.kill9(t) // during the outage
	p = startProbe(t, nil, cfg, dir)
	time.Sleep(1500 * time.Millisecond)
	before, _ := rcv.counts()
	rcv.down.Store(false)

	// Kill again while the backlog drains (at 300 samples/s it takes
	// seconds): once some of it arrived.
	require.Eventually(t, func() bool { d, _ := rcv.counts(); return d > before+300 }, 20*time.Second, 5*time.Millisecond)
	require.Positive(t, p.metric(t, "probe_queue_buffered_samples", "output", "rw"), "killed during the drain")
	p.kill9(t)
	p = startProbe(t, nil, cfg, dir)
	time.Sleep(time.Second)
	p.stop(t)
	drain(t, dir, "rw", config(outageOutputs, 300, rcv.url(), audit.url()))

	want := sampled(t, dir, []string{"rw", "audit"})
	got := rcv.keys()
	var missing, extra int
	for k := range want {
		if !got[k] {
			missing++
		}
	}
	for k := range got {
		if !want[k] {
			extra++
		}
	}
	distinct, dups := rcv.counts()
	t.Logf("sampled %d, received %d distinct, %d duplicates, %d missing, %d unknown", len(want), distinct, dups, missing, extra)
	require.Greater(t, len(want), 1000)
	require.Zero(t, missing, "samples lost")
	require.Zero(t, extra, "samples received that were never sampled")
	// Each kill may resend what was in flight: a live and a backlog batch.
	require.LessOrEqual(t, dups, 2*2*100)
}
