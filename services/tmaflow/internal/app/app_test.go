package app

import (
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func parse(t *testing.T, args ...string) Config {
	t.Helper()
	cfg, err := ParseFlags(args)
	require.NoError(t, err)
	return cfg
}

func TestConfig(t *testing.T) {
	base := []string{"-monitor.auth.disabled"}
	for _, tc := range []struct {
		name         string
		args         []string
		wantErr      string
		wantServices []string
		wantEmbedded bool
		wantDataDir  string
	}{
		{name: "defaults run everything on the embedded broker", wantServices: []string{TargetMonitor}, wantEmbedded: true, wantDataDir: filepath.Join("data", "kafka")},
		{name: "broker logs under data-dir", args: []string{"-data-dir=/var/lib/tmaflow"}, wantServices: []string{TargetMonitor}, wantEmbedded: true, wantDataDir: "/var/lib/tmaflow/kafka"},
		{name: "own broker data dir wins", args: []string{"-data-dir=/x", "-broker.data-dir=/y"}, wantServices: []string{TargetMonitor}, wantEmbedded: true, wantDataDir: "/y"},
		{name: "external kafka", args: []string{"-kafka.brokers=k1:9092,k2:9092"}, wantServices: []string{TargetMonitor}, wantDataDir: filepath.Join("data", "kafka")},
		{name: "target list", args: []string{"-target=monitor,all"}, wantServices: []string{TargetMonitor}, wantEmbedded: true, wantDataDir: filepath.Join("data", "kafka")},
		{name: "unknown target", args: []string{"-target=monitor,nope"}, wantErr: `target "nope"`},
		{name: "empty target", args: []string{"-target="}, wantErr: "target: empty"},
		{name: "bad broker config", args: []string{"-broker.partitions=0"}, wantErr: "broker.partitions"},
		{name: "broker config ignored with external kafka", args: []string{"-broker.partitions=0", "-kafka.brokers=k:9092"}, wantServices: []string{TargetMonitor}, wantDataDir: filepath.Join("data", "kafka")},
		{name: "bad kafka config", args: []string{"-kafka.brokers=nohost"}, wantErr: "kafka.brokers"},
		{name: "bad monitor config", args: []string{"-monitor.max-inflight=0"}, wantErr: "monitor: max-inflight"},
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

func TestConfigFromEnvironment(t *testing.T) {
	t.Setenv("TMAFLOW_KAFKA_BROKERS", "k:9092")
	t.Setenv("TMAFLOW_MONITOR_AUTH_DISABLED", "true")
	cfg := parse(t)
	require.NoError(t, cfg.Validate())
	require.False(t, cfg.EmbeddedBroker())
}

func TestParseFlagsRejectsArguments(t *testing.T) {
	_, err := ParseFlags([]string{"extra"})
	require.ErrorContains(t, err, "unexpected arguments")
}

func newApp(t *testing.T, args ...string) *App {
	t.Helper()
	a, err := New(parse(t, append([]string{
		"-data-dir=" + t.TempDir(),
		"-broker.listen-address=127.0.0.1:0",
		"-monitor.listen-address=127.0.0.1:0",
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
	for _, addr := range []string{a.MonitorAddr(), a.KafkaBrokers()[0]} {
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

	a := newApp(t, "-kafka.brokers="+dead, "-kafka.dial-timeout=200ms")
	require.Equal(t, []string{dead}, a.KafkaBrokers())
	done := runApp(t, a)
	resp, err := http.Get("http://" + a.MonitorAddr() + "/-/ready")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	a.Shutdown()
	require.NoError(t, <-done)
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
	// The monitor cannot bind its port, after the broker started.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { require.NoError(t, ln.Close()) }()
	brokerAddr := freeAddr(t)
	_, err = New(parse(t, "-data-dir="+t.TempDir(), "-broker.listen-address="+brokerAddr,
		"-monitor.listen-address="+ln.Addr().String(), "-monitor.auth.disabled"), Options{})
	require.ErrorContains(t, err, "monitor")
	// The broker's port is free again.
	ln2, err := net.Listen("tcp", brokerAddr)
	require.NoError(t, err)
	require.NoError(t, ln2.Close())
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
}
