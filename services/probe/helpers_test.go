package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/peertest"
	"github.com/tmaflow/tmaflow/services/probe/internal/app"
	"github.com/tmaflow/tmaflow/services/probe/internal/queue"
)

// envMain makes the test binary run the probe's main instead of the
// tests, so process tests exercise the real binary (signals, kill -9)
// without a go build.
const envMain = "PROBE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envMain) == "1" {
		app.Exit()
	}
	os.Exit(m.Run())
}

// probeProc is a probe subprocess.
type probeProc struct {
	cmd  *exec.Cmd
	addr string // its /metrics listener
	logs *syncLog
	done chan error
}

type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startProbe runs the probe (argv, or the test binary when nil) with
// config and queue dir.
func startProbe(t *testing.T, argv []string, config, dir string) *probeProc {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "probe.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(config), 0o644))
	return startProbeFile(t, argv, cfgPath, dir)
}

func startProbeFile(t *testing.T, argv []string, cfgPath, dir string) *probeProc {
	t.Helper()
	addr := peertest.FreeAddr(t)
	if argv == nil {
		argv = []string{os.Args[0]}
	}
	args := append(argv[1:len(argv):len(argv)], "-config.file="+cfgPath, "-queue.dir="+dir, "-listen-address="+addr, "-log.level=debug")
	cmd := exec.Command(argv[0], args...)
	cmd.Env = append(os.Environ(), envMain+"=1")
	p := &probeProc{cmd: cmd, addr: addr, logs: &syncLog{}, done: make(chan error, 1)}
	cmd.Stderr = p.logs
	cmd.Stdout = p.logs
	require.NoError(t, cmd.Start())
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("probe logs:\n%s", p.logs.String())
		}
	})
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 20*time.Millisecond, "probe not ready")
	return p
}

// kill9 kills the probe with SIGKILL.
func (p *probeProc) kill9(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	<-p.done
}

// stop ends the probe with SIGTERM and requires a clean exit.
func (p *probeProc) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-p.done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("probe did not stop")
	}
}

// metric reads one sample of the probe's /metrics (the sum over series
// whose labels contain every given pair); -1 when absent.
func (p *probeProc) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		return -1
	}
	defer func() { _ = resp.Body.Close() }()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	fam, ok := fams[name]
	if !ok {
		return -1
	}
	sum, found := 0.0, false
	for _, m := range fam.Metric {
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			ok := false
			for _, l := range m.Label {
				if l.GetName() == labels[i] && l.GetValue() == labels[i+1] {
					ok = true
				}
			}
			match = match && ok
		}
		if !match {
			continue
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	if !found {
		return -1
	}
	return sum
}

// rwReceiver is an in-process remote_write receiver that counts every
// sample by series and timestamp; while down it answers 503.
type rwReceiver struct {
	srv  *httptest.Server
	down atomic.Bool
	mu   sync.Mutex
	got  map[string]int // series@ts → times received
	reqs int
}

func newRWReceiver(t *testing.T) *rwReceiver {
	r := &rwReceiver{got: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.down.Load() {
			http.Error(w, "down for the test", http.StatusServiceUnavailable)
			return
		}
		b, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		raw, err := snappy.Decode(nil, b)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var wr prompb.WriteRequest
		if err := wr.Unmarshal(raw); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		r.reqs++
		for _, ts := range wr.Timeseries {
			var ls []string
			for _, l := range ts.Labels {
				ls = append(ls, l.Name+"="+l.Value)
			}
			for _, s := range ts.Samples {
				r.got[strings.Join(ls, ",")+"@"+strconv.FormatInt(s.Timestamp, 10)]++
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *rwReceiver) url() string { return r.srv.URL + "/api/v1/write" }

// counts returns the distinct samples received and the extra copies.
func (r *rwReceiver) counts() (distinct, dups int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.got {
		distinct++
		dups += n - 1
	}
	return distinct, dups
}

func (r *rwReceiver) keys() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]bool{}
	for k := range r.got {
		out[k] = true
	}
	return out
}

// sampled reads every sample the probe ever queued, from the records an
// output that never acknowledged anything ("audit") still holds.
func sampled(t *testing.T, dir string, outputs []string) map[string]bool {
	t.Helper()
	q, err := queue.Open(queue.Options{Dir: dir, Outputs: outputs})
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()
	out := map[string]bool{}
	r := q.NewReader()
	from := uint64(0)
	for head := q.Head(); from < head; {
		b, err := r.Read(context.Background(), from, head, 10000)
		require.NoError(t, err)
		for _, s := range b.Series {
			var ls []string
			for _, l := range s.Labels {
				ls = append(ls, l.Name+"="+l.Value)
			}
			for _, smp := range s.Samples {
				out[strings.Join(ls, ",")+"@"+strconv.FormatInt(smp.TimestampMs, 10)] = true
			}
		}
		from = b.Next
	}
	return out
}

// config renders a probe configuration.
func config(format string, args ...any) string { return fmt.Sprintf(format, args...) }
