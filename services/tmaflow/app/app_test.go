package app

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/services/labeler/labeler"
	"github.com/tmaflow/tmaflow/services/monitor/monitor"
	"github.com/tmaflow/tmaflow/services/persister/persister"
)

func parse(t *testing.T, args ...string) Config {
	t.Helper()
	cfg, err := ParseFlags(args)
	require.NoError(t, err)
	return cfg
}

func TestConfig(t *testing.T) {
	base := []string{"-monitor.auth.disabled", "-registry=reg.yaml"}
	all := []string{TargetMonitor, TargetBridge, TargetLabeler, TargetPersister, TargetRuler, TargetReporter}
	for _, tc := range []struct {
		name         string
		args         []string
		wantErr      string
		wantServices []string
		wantEmbedded bool
		wantDataDir  string
	}{
		{name: "defaults run everything on the embedded broker", wantServices: all, wantEmbedded: true, wantDataDir: filepath.Join("data", "kafka")},
		{name: "broker logs under data-dir", args: []string{"-data-dir=/var/lib/tmaflow"}, wantServices: all, wantEmbedded: true, wantDataDir: "/var/lib/tmaflow/kafka"},
		{name: "own broker data dir wins", args: []string{"-data-dir=/x", "-broker.data-dir=/y"}, wantServices: all, wantEmbedded: true, wantDataDir: "/y"},
		{name: "external kafka", args: []string{"-kafka.brokers=k1:9092,k2:9092"}, wantServices: all, wantDataDir: filepath.Join("data", "kafka")},
		{name: "target list", args: []string{"-target=monitor,all"}, wantServices: all, wantEmbedded: true, wantDataDir: filepath.Join("data", "kafka")},
		{name: "some targets, in start order", args: []string{"-target=persister,monitor"}, wantServices: []string{TargetMonitor, TargetPersister}, wantEmbedded: true, wantDataDir: filepath.Join("data", "kafka")},
		{name: "labeler alone", args: []string{"-target=labeler"}, wantServices: []string{TargetLabeler}, wantEmbedded: true, wantDataDir: filepath.Join("data", "kafka")},
		{name: "unknown target", args: []string{"-target=monitor,nope"}, wantErr: `target "nope"`},
		{name: "empty target", args: []string{"-target="}, wantErr: "target: empty"},
		{name: "bad broker config", args: []string{"-broker.partitions=0"}, wantErr: "broker.partitions"},
		{name: "broker config ignored with external kafka", args: []string{"-broker.partitions=0", "-kafka.brokers=k:9092"}, wantServices: all, wantDataDir: filepath.Join("data", "kafka")},
		{name: "bad kafka config", args: []string{"-kafka.brokers=nohost"}, wantErr: "kafka.brokers"},
		{name: "bad monitor config", args: []string{"-monitor.max-inflight=0"}, wantErr: "monitor: max-inflight"},
		{name: "bad labeler config", args: []string{"-labeler.shutdown-timeout=0s"}, wantErr: "labeler: shutdown-timeout"},
		{name: "bad persister config", args: []string{"-persister.query.timeout=0s"}, wantErr: "persister: query.timeout"},
		{name: "persister config ignored when not a target", args: []string{"-persister.query.timeout=0s", "-target=monitor,labeler"}, wantServices: []string{TargetMonitor, TargetLabeler}, wantEmbedded: true, wantDataDir: filepath.Join("data", "kafka")},
		{name: "consumer groups must differ", args: []string{"-labeler.consumer-group=g", "-persister.consumer-group=g"}, wantErr: "must differ"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := parse(t, append(base, tc.args...)...)
			err := cfg.Validate()
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			got, err := cfg.services()
			require.NoError(t, err)
			require.Equal(t, tc.wantServices, got)
			require.Equal(t, tc.wantEmbedded, cfg.EmbeddedBroker())
			require.Equal(t, tc.wantDataDir, cfg.BrokerDataDir())
		})
	}
}

func TestConfigSharedRegistry(t *testing.T) {
	for _, tc := range []struct {
		name                              string
		args                              []string
		wantMonitor, wantLabeler, wantAPI string
		wantTSDB                          string
	}{
		{name: "one file for all", args: []string{"-registry=r.yaml"}, wantMonitor: "r.yaml", wantLabeler: "r.yaml", wantAPI: "r.yaml", wantTSDB: filepath.Join("data", "tsdb")},
		{name: "the monitor's flag feeds all", args: []string{"-monitor.auth.registry=m.yaml"}, wantMonitor: "m.yaml", wantLabeler: "m.yaml", wantAPI: "m.yaml", wantTSDB: filepath.Join("data", "tsdb")},
		{name: "own flags win", args: []string{"-registry=r.yaml", "-monitor.auth.registry=m.yaml", "-labeler.registry=l.yaml", "-persister.api.auth.registry=p.yaml"},
			wantMonitor: "m.yaml", wantLabeler: "l.yaml", wantAPI: "p.yaml", wantTSDB: filepath.Join("data", "tsdb")},
		{name: "no monitor credentials with auth disabled", args: []string{"-registry=r.yaml", "-monitor.auth.disabled"}, wantLabeler: "r.yaml", wantAPI: "r.yaml", wantTSDB: filepath.Join("data", "tsdb")},
		{name: "tsdb under data-dir", args: []string{"-registry=r.yaml", "-data-dir=/d"}, wantMonitor: "r.yaml", wantLabeler: "r.yaml", wantAPI: "r.yaml", wantTSDB: "/d/tsdb"},
		{name: "own tsdb path wins", args: []string{"-registry=r.yaml", "-data-dir=/d", "-persister.tsdb.path=/t"}, wantMonitor: "r.yaml", wantLabeler: "r.yaml", wantAPI: "r.yaml", wantTSDB: "/t"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := parse(t, tc.args...)
			require.NoError(t, cfg.Validate())
			mon := cfg.module(TargetMonitor).Config.(*monitor.Config)
			lab := cfg.module(TargetLabeler).Config.(*labeler.Config)
			per := cfg.module(TargetPersister).Config.(*persister.Config)
			require.Equal(t, tc.wantMonitor, mon.Auth.Registry)
			require.Equal(t, tc.wantLabeler, lab.Registry)
			require.Equal(t, tc.wantAPI, per.API.AuthRegistry)
			require.Equal(t, tc.wantTSDB, per.TSDB.Path)
			// The query API wants credentials by default.
			require.Empty(t, per.API.DefaultTenant)
			require.Equal(t, "127.0.0.1:9090", per.ListenAddress)
		})
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	t.Setenv("TMAFLOW_KAFKA_BROKERS", "k:9092")
	t.Setenv("TMAFLOW_MONITOR_AUTH_DISABLED", "true")
	t.Setenv("TMAFLOW_REGISTRY", "r.yaml")
	cfg := parse(t)
	require.NoError(t, cfg.Validate())
	require.False(t, cfg.EmbeddedBroker())
}

func TestParseFlagsRejectsArguments(t *testing.T) {
	_, err := ParseFlags([]string{"extra"})
	require.ErrorContains(t, err, "unexpected arguments")
}

// exampleRegistry is the registry `make run` uses.
const exampleRegistry = "../../../examples/registry.yaml"

func newApp(t *testing.T, args ...string) *App {
	t.Helper()
	a, err := New(parse(t, append([]string{
		"-data-dir=" + t.TempDir(),
		"-broker.listen-address=127.0.0.1:0",
		"-monitor.listen-address=127.0.0.1:0",
		"-bridge.listen-address=127.0.0.1:0",
		"-bridge.mqtt.listen-address=127.0.0.1:0",
		"-labeler.listen-address=127.0.0.1:0",
		"-persister.listen-address=127.0.0.1:0",
		"-ruler.listen-address=127.0.0.1:0",
		"-reporter.listen-address=127.0.0.1:0",
		"-persister.ready.settle=100ms",
		"-registry=" + exampleRegistry,
		"-monitor.auth.disabled",
		"-monitor.ready-check-interval=50ms",
	}, args...)...), Options{})
	require.NoError(t, err)
	return a
}

func runApp(t *testing.T, a *App) chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- a.Run() }()
	return done
}

func TestShutdownClosesEverything(t *testing.T) {
	a := newApp(t)
	done := runApp(t, a)
	require.Eventually(t, a.Prober().IsReady, 5*time.Second, 10*time.Millisecond)
	require.True(t, a.Prober().IsHealthy())

	a.Shutdown()
	a.Shutdown() // idempotent
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
	require.False(t, a.Prober().IsReady())
	for _, addr := range []string{a.MonitorAddr(), a.LabelerAddr(), a.PersisterAddr(), a.KafkaBrokers()[0]} {
		_, err := net.DialTimeout("tcp", addr, time.Second)
		require.Error(t, err, "%s still listening", addr)
	}
}

func TestExternalKafkaDown(t *testing.T) {
	// Nothing listens on the port: tmaflow starts, serves, but is not
	// ready, and starts no broker of its own.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	require.NoError(t, ln.Close())

	// The monitor alone: the labeler's and persister's consumers fail
	// to subscribe without a broker and end the process (after
	// bus.close-timeout), so a supervisor restarts it.
	a := newApp(t, "-kafka.brokers="+dead, "-kafka.dial-timeout=200ms", "-target=monitor")
	require.Equal(t, []string{dead}, a.KafkaBrokers())
	done := runApp(t, a)
	resp, err := http.Get("http://" + a.MonitorAddr() + "/-/ready")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	a.Shutdown()
	require.NoError(t, <-done)
}

// TestStartupLogNamesTheBus checks that the startup line says which bus
// runs and whether this process runs it (the embedded Kafka broker or
// NATS server) or an external one does.
func TestStartupLogNamesTheBus(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	require.NoError(t, ln.Close())
	for _, tc := range []struct {
		name         string
		args         []string
		wantBus      string
		wantEmbedded bool
	}{
		{name: "embedded kafka", wantBus: "kafka", wantEmbedded: true},
		{name: "external kafka", args: []string{"-kafka.brokers=" + dead}, wantBus: "kafka"},
		{name: "embedded nats", args: []string{"-bus=nats", "-nats.listen-address=127.0.0.1:0"}, wantBus: "nats", wantEmbedded: true},
		{name: "external nats", args: []string{"-bus=nats", "-nats.url=nats://" + dead}, wantBus: "nats"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			args := append([]string{
				"-data-dir=" + t.TempDir(), "-target=monitor",
				"-broker.listen-address=127.0.0.1:0", "-monitor.listen-address=127.0.0.1:0",
				"-registry=" + exampleRegistry, "-monitor.auth.disabled",
			}, tc.args...)
			a, err := New(parse(t, args...), Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			require.NoError(t, err)
			require.NoError(t, a.close())
			var line map[string]any
			for l := range strings.SplitSeq(logs.String(), "\n") {
				var rec map[string]any
				if json.Unmarshal([]byte(l), &rec) == nil && rec["msg"] == "tmaflow configured" {
					line = rec
				}
			}
			require.NotNil(t, line, logs.String())
			require.Equal(t, tc.wantBus, line["bus"])
			require.Equal(t, tc.wantEmbedded, line["embedded"])
			require.NotEmpty(t, line["brokers"])
			if tc.wantBus == "nats" && tc.wantEmbedded {
				require.Contains(t, logs.String(), `"msg":"nats server started"`)
			}
		})
	}
}

func TestDebugServer(t *testing.T) {
	a := newApp(t, "-debug.listen-address=127.0.0.1:0")
	done := runApp(t, a)
	defer func() {
		a.Shutdown()
		require.NoError(t, <-done)
	}()
	resp, err := http.Get("http://" + a.DebugAddr() + "/debug/pprof/goroutine?debug=1")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "goroutine profile")

	// Profiles are not on the ingest listener.
	resp, err = http.Get("http://" + a.MonitorAddr() + "/debug/pprof/")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestDebugServerOffByDefault(t *testing.T) {
	a := newApp(t)
	require.Empty(t, a.DebugAddr())
	require.NoError(t, a.close())
}

func TestNewReleasesWhatItStartedOnFailure(t *testing.T) {
	for _, tc := range []struct {
		name    string
		busy    string // the flag given a port in use
		wantErr string
	}{
		{name: "monitor", busy: "-monitor.listen-address", wantErr: "monitor"},
		{name: "labeler", busy: "-labeler.listen-address", wantErr: "labeler"},
		{name: "persister", busy: "-persister.listen-address", wantErr: "persister"},
		{name: "ruler", busy: "-ruler.listen-address", wantErr: "ruler"},
		{name: "reporter", busy: "-reporter.listen-address", wantErr: "reporter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A service cannot bind its port, after the broker started.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			defer func() { require.NoError(t, ln.Close()) }()
			brokerAddr := freeAddr(t)
			dir := t.TempDir()
			args := []string{"-data-dir=" + dir, "-broker.listen-address=" + brokerAddr, "-registry=" + exampleRegistry}
			for _, f := range []string{"-monitor.listen-address", "-labeler.listen-address", "-persister.listen-address", "-ruler.listen-address", "-reporter.listen-address"} {
				addr := "127.0.0.1:0"
				if f == tc.busy {
					addr = ln.Addr().String()
				}
				args = append(args, f+"="+addr)
			}
			_, err = New(parse(t, args...), Options{})
			require.ErrorContains(t, err, tc.wantErr)
			// The broker's port is free again.
			ln2, err := net.Listen("tcp", brokerAddr)
			require.NoError(t, err)
			require.NoError(t, ln2.Close())
		})
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestMainHashSecret(t *testing.T) {
	var out, errw strings.Builder
	code := Main([]string{"hash-secret", "--algo", "bcrypt", "--secret", "s"}, nil, &out, &errw)
	require.Equal(t, 0, code, errw.String())
	require.Regexp(t, `^\$2a\$10\$`, out.String())

	code = Main([]string{"hash-secret", "--algo", "md5", "--secret", "s"}, nil, &out, &errw)
	require.Equal(t, 2, code)
	require.Contains(t, errw.String(), "md5")
}

func TestMainHelp(t *testing.T) {
	var out, errw strings.Builder
	require.Equal(t, 0, Main([]string{"-h"}, nil, &out, &errw))
	require.Contains(t, errw.String(), "-kafka.brokers")
	require.Contains(t, errw.String(), "-monitor.auth.registry")
	require.Contains(t, errw.String(), "-broker.retention")
	require.Contains(t, errw.String(), "-labeler.registry")
	require.Contains(t, errw.String(), "-persister.tsdb.path")
	require.Contains(t, errw.String(), "-registry")
}
