package main_test

// The pipeline on NATS as separate processes: each service as its own
// binary (module.Main, as services/<name>/main.go runs it) on one NATS
// server, and the embedded NATS server killed with SIGKILL while a probe
// posts (kill9_test.go kills the consumers, on both buses).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus/nats/natstest"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/peertest"
	"github.com/tmaflow/tmaflow/services/tmaflow/app"
)

// natsClientFlags are the bus flags of a service binary on the NATS
// server at url: what a killed consumer had not acknowledged comes again
// after 2 s.
func natsClientFlags(url string) []string {
	return []string{"-bus=nats", "-nats.url=" + url, "-nats.ack-wait=2s", "-nats.pinned-ttl=2s"}
}

// serviceArgs are the flags service name needs as its own binary, its
// state under dir, the credentials and names from reg.
func serviceArgs(t *testing.T, name, dir, reg string) []string {
	t.Helper()
	rules, err := filepath.Abs("../../examples/rules")
	require.NoError(t, err)
	args := []string{"-listen-address=127.0.0.1:0"}
	switch name {
	case app.TargetMonitor:
		return append(args, "-auth.registry="+reg, "-ready-check-interval=100ms")
	case app.TargetLabeler:
		return append(args, "-registry="+reg)
	case app.TargetPersister:
		return append(args, "-tsdb.path="+filepath.Join(dir, "tsdb"), "-api.auth.registry="+reg, "-ready.settle=100ms")
	case app.TargetRuler:
		return append(args, "-rules.dir="+rules, "-scratch-dir="+filepath.Join(dir, "ruler"))
	case app.TargetBridge:
		return append(args, "-mqtt.listen-address=127.0.0.1:0", "-auth.registry="+reg)
	case app.TargetReporter:
		return append(args, "-data-dir="+filepath.Join(dir, "reporter"))
	}
	t.Fatalf("no service %q", name)
	return nil
}

// listenAddr is the address service name's binary logged it listens on.
func listenAddr(t *testing.T, p *process, name string) string {
	t.Helper()
	msg := name + " listening"
	if name == app.TargetReporter {
		msg = "http server listening"
	}
	return p.waitRecord(t, msg, func(rec map[string]any) bool { return rec["component"] == name })["addr"].(string)
}

// awaitReady waits until the listener at addr is ready.
func awaitReady(t *testing.T, addr string) {
	t.Helper()
	peertest.AwaitReady(t, "http://"+addr+"/-/ready", 30*time.Second)
}

// TestServiceBinariesOnNATS runs every service's own binary with
// -bus=nats against a NATS server: each starts, says it runs on NATS,
// becomes ready and stops cleanly on SIGTERM.
func TestServiceBinariesOnNATS(t *testing.T) {
	url := natstest.Start(t)
	dir := t.TempDir()
	reg, err := filepath.Abs(exampleRegistry)
	require.NoError(t, err)
	names := serviceNames()
	require.ElementsMatch(t, []string{app.TargetMonitor, app.TargetBridge, app.TargetLabeler, app.TargetPersister, app.TargetRuler, app.TargetReporter}, names)
	procs := map[string]*process{}
	for _, name := range names {
		procs[name] = startService(t, name, append(natsClientFlags(url), serviceArgs(t, name, filepath.Join(dir, name), reg)...)...)
	}
	for _, name := range names {
		p := procs[name]
		rec := p.waitLog(t, "service configured")
		require.Equal(t, name, rec["service"])
		require.Equal(t, "nats", rec["bus"], name)
		require.Equal(t, []any{url}, rec["brokers"], name)
		awaitReady(t, listenAddr(t, p, name))
	}
	for _, name := range names {
		require.NoError(t, procs[name].cmd.Process.Signal(syscall.SIGTERM))
	}
	for _, name := range names {
		require.NoError(t, procs[name].wait(t), "%s exits 0 on SIGTERM", name)
	}
}

// splitPipeline is monitor → labeler → persister (→ ruler) as service
// binaries on one bus that outlives them; the monitor may instead run in
// a tmaflow process that also runs the embedded NATS server.
type splitPipeline struct {
	t     *testing.T
	bus   busPeer
	dir   string
	reg   string
	procs map[string]*process
	addrs map[string]string
}

func newSplitPipeline(t *testing.T, bus busPeer) *splitPipeline {
	reg, err := filepath.Abs(exampleRegistry)
	require.NoError(t, err)
	return &splitPipeline{t: t, bus: bus, dir: t.TempDir(), reg: reg, procs: map[string]*process{}, addrs: map[string]string{}}
}

// start starts (or restarts) service name on its state dir and waits
// until it is ready.
func (np *splitPipeline) start(name string) {
	t := np.t
	t.Helper()
	p := startService(t, name, append(slices.Clone(np.bus.flags), serviceArgs(t, name, filepath.Join(np.dir, name), np.reg)...)...)
	np.procs[name] = p
	np.addrs[name] = listenAddr(t, p, name)
	awaitReady(t, np.addrs[name])
}

// kill kills service name with SIGKILL.
func (np *splitPipeline) kill(name string) {
	np.t.Helper()
	killProcess(np.t, np.procs[name])
}

// stop stops every service with SIGTERM.
func (np *splitPipeline) stop() {
	np.t.Helper()
	for name, p := range np.procs {
		require.NoError(np.t, p.cmd.Process.Signal(syscall.SIGTERM), name)
		require.NoError(np.t, p.wait(np.t), "%s exits 0 on SIGTERM", name)
	}
}

func killProcess(t *testing.T, p *process) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGKILL))
	require.Error(t, p.wait(t), "killed")
}

// observations posts one cpu_usage_percent observation of demo-host
// every step, observation i at base + i·step, and records which the
// monitor acknowledged (200). A POST that fails (the monitor or its bus
// down) is not retried: its observation may or may not be stored.
type observations struct {
	base  time.Time
	step  time.Duration
	value atomic.Value // float64 posted from now on

	mu           sync.Mutex
	sent, acked  []int64 // timestamps (ms)
	ackedN, fail atomic.Int64
}

func newObservations(step time.Duration) *observations {
	o := &observations{base: time.Now().Truncate(time.Second), step: step}
	o.value.Store(float64(-1)) // -1: i mod 80, below every threshold
	return o
}

// post posts n observations, one every step at most (a slow answer makes
// it fall behind, never ahead of the clock); it returns when done or ctx
// ends.
func (o *observations) post(ctx context.Context, monitorURL string, n int) {
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(o.step)
	defer tick.Stop()
	for i := range n {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		at := o.base.Add(time.Duration(i) * o.step)
		v := o.value.Load().(float64)
		if v < 0 {
			v = float64(i % 80)
		}
		o.mu.Lock()
		o.sent = append(o.sent, at.UnixMilli())
		o.mu.Unlock()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, monitorURL, bytes.NewReader(cpuMessage(v, at)))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth(demoProbe, demoSecret)
		resp, err := client.Do(req)
		if err != nil {
			o.fail.Add(1)
			continue
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			o.fail.Add(1)
			continue
		}
		o.mu.Lock()
		o.acked = append(o.acked, at.UnixMilli())
		o.mu.Unlock()
		o.ackedN.Add(1)
	}
}

// killMidStream posts 2,000 observations to monitorURL (10 s at 5 ms);
// once 300 were acknowledged it calls kill, a second later restart, and
// returns when all were posted how many were acknowledged before the
// kill.
func (o *observations) killMidStream(t *testing.T, monitorURL string, kill, restart func()) int64 {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	posted := make(chan struct{})
	go func() {
		defer close(posted)
		o.post(ctx, monitorURL, 2000)
	}()
	require.Eventually(t, func() bool { return o.ackedN.Load() >= 300 }, 30*time.Second, time.Millisecond)
	kill()
	killedAt := o.ackedN.Load()
	time.Sleep(time.Second)
	restart()
	<-posted
	return killedAt
}

// times returns the timestamps sent and acknowledged.
func (o *observations) times() (sent, acked []int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.sent), slices.Clone(o.acked)
}

// storedTimes returns how often each timestamp of demo-host's
// cpu_usage_percent is in the TSDB behind api (the persister's query
// API), from o.base on, and how many series hold them.
func (o *observations) storedTimes(t *testing.T, api string) (map[int64]int, int, error) {
	t.Helper()
	sent, _ := o.times()
	if len(sent) == 0 {
		return nil, 0, nil
	}
	end := time.UnixMilli(sent[len(sent)-1]).Add(time.Second).Truncate(time.Second)
	span := int(end.Sub(o.base).Seconds()) + 1
	u := api + "/query?" + url.Values{
		"query": {fmt.Sprintf(`cpu_usage_percent{resource="demo-host"}[%ds]`, span)},
		"time":  {strconv.FormatInt(end.Unix(), 10)},
	}.Encode()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	require.NoError(t, err)
	req.SetBasicAuth(demoProbe, demoSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("query: status %d", resp.StatusCode)
	}
	var res struct {
		Data struct {
			Result []struct {
				Values [][2]any `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return nil, 0, err
	}
	out := map[int64]int{}
	for _, s := range res.Data.Result {
		for _, v := range s.Values {
			sec, ok := v[0].(float64)
			if !ok {
				return nil, 0, fmt.Errorf("sample time %v", v[0])
			}
			out[int64(sec*1000+0.5)]++
		}
	}
	return out, len(res.Data.Result), nil
}

// lossReport is what the TSDB holds of the observations.
type lossReport struct {
	sent, acked, stored int
	// lost are acknowledged observations not stored; extra are stored
	// samples at a timestamp never sent; dup are timestamps stored more
	// than once.
	lost, extra, dup int
	series           int
}

func (r lossReport) String() string {
	return fmt.Sprintf("%d sent, %d acknowledged, %d stored in %d series: %d acknowledged lost, %d duplicate, %d never sent",
		r.sent, r.acked, r.stored, r.series, r.lost, r.dup, r.extra)
}

// awaitStored waits until every acknowledged observation is in the TSDB
// (at most within timeout) and reports what it holds then.
func (o *observations) awaitStored(t *testing.T, api string, timeout time.Duration) lossReport {
	t.Helper()
	var rep lossReport
	deadline := time.Now().Add(timeout)
	for {
		sent, acked := o.times()
		stored, series, err := o.storedTimes(t, api)
		if err == nil {
			rep = lossReport{sent: len(sent), acked: len(acked), stored: len(stored), series: series}
			isSent := map[int64]bool{}
			for _, ts := range sent {
				isSent[ts] = true
			}
			for _, ts := range acked {
				if stored[ts] == 0 {
					rep.lost++
				}
			}
			for ts, n := range stored {
				if !isSent[ts] {
					rep.extra++
				}
				if n > 1 {
					rep.dup++
				}
			}
			if rep.lost == 0 {
				return rep
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("query the TSDB: %v", err)
			}
			return rep
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// TestNATSServerKill9 runs the monitor in a tmaflow process that also
// runs the embedded NATS server (-target=monitor -bus=nats), the labeler
// and persister as their own binaries on it, and kills that process with
// SIGKILL while a probe posts, restarting it on the same data dir a
// second later; the labeler and persister reconnect.
//
// With sync_interval always (the default of -nats.sync-interval) no
// acknowledged observation may be lost. With NATS's own default, 2m, the
// test measures and logs how many were lost but does not fail on it: a
// kill -9 ends the process, not the machine, so what JetStream wrote
// before acknowledging (it writes each message to its file before the
// PubAck, fsyncing only at the interval) is still in the page cache and
// reaches the disk anyway. The loss Jepsen found (nats-server #7564) needs
// the machine to go down within the interval; this test measures the
// process crash alone, and on a healthy kernel finds 0 lost in both.
func TestNATSServerKill9(t *testing.T) {
	for _, tc := range []struct {
		sync        string
		mayLoseData bool
	}{
		{sync: "always"},
		{sync: "2m", mayLoseData: true},
	} {
		t.Run("sync_interval="+tc.sync, func(t *testing.T) {
			natsAddr, monitorAddr := peertest.FreeAddr(t), peertest.FreeAddr(t)
			np := newSplitPipeline(t, natsBusAt("nats://"+natsAddr))
			args := []string{"-target=monitor", "-data-dir=" + filepath.Join(np.dir, "tmaflow"), "-registry=" + np.reg,
				"-bus=nats", "-nats.listen-address=" + natsAddr, "-nats.sync-interval=" + tc.sync,
				"-monitor.listen-address=" + monitorAddr, "-monitor.ready-check-interval=100ms"}
			startServer := func() *process {
				p := startProcess(t, args...)
				rec := p.waitLog(t, "nats server started")
				require.Equal(t, tc.sync, rec["sync_interval"])
				awaitReady(t, monitorAddr)
				return p
			}
			server := startServer()
			np.start(app.TargetLabeler)
			np.start(app.TargetPersister)

			obs := newObservations(5 * time.Millisecond)
			killedAt := obs.killMidStream(t, "http://"+monitorAddr+"/monitor",
				func() { killProcess(t, server) }, func() { server = startServer() })
			t.Logf("tmaflow (monitor + embedded NATS, sync_interval %s) killed after %d acknowledged observations, restarted a second later; %d POSTs failed meanwhile",
				tc.sync, killedAt, obs.fail.Load())

			rep := obs.awaitStored(t, "http://"+np.addrs[app.TargetPersister]+"/api/v1", 60*time.Second)
			t.Logf("embedded NATS server killed, sync_interval %s: %s; topic-metrics holds %d records", tc.sync, rep, len(np.bus.read(t, contract.TopicMetrics)))
			require.Positive(t, obs.fail.Load(), "the server was down for a while")
			require.LessOrEqual(t, rep.series, 1)
			require.Zero(t, rep.dup+rep.extra, "duplicate or unknown samples")
			if !tc.mayLoseData {
				require.Zero(t, rep.lost, "acknowledged observations lost")
				require.GreaterOrEqual(t, rep.stored, rep.acked)
			}
			require.Empty(t, np.bus.read(t, contract.TopicDLQ), "no sample dead-lettered")
			np.stop()
			require.NoError(t, server.cmd.Process.Signal(syscall.SIGTERM))
			require.NoError(t, server.wait(t))
		})
	}
}
