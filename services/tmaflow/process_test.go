package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/pkg/registry"
	"github.com/tmaflow/tmaflow/services/tmaflow/app"
)

// envMain makes the test binary run tmaflow's main instead of the tests, so
// process tests exercise the real signal handling without a go build.
const envMain = "TMAFLOW_TEST_RUN_MAIN"

// envService makes the test binary run one service's own binary instead
// (module.Exit of the service's module: its flags unprefixed, the bus
// external), as services/<name>'s main does.
const envService = "TMAFLOW_TEST_RUN_SERVICE"

// serviceNames are the services of the all-in-one's table, each also a
// binary of its own.
func serviceNames() []string {
	var out []string
	for _, m := range app.Modules() {
		out = append(out, m.Name)
	}
	return out
}

func TestMain(m *testing.M) {
	if os.Getenv(envMain) == "1" {
		os.Exit(app.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	if name := os.Getenv(envService); name != "" {
		for _, m := range app.Modules() {
			if m.Name == name {
				module.Exit(m)
			}
		}
		_, _ = fmt.Fprintf(os.Stderr, "no service %q\n", name)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

type process struct {
	cmd  *exec.Cmd
	done chan error

	mu   sync.Mutex
	recs []map[string]any // every log record so far, so waits need not follow log order
	more chan struct{}    // closed at the next record or at the end of the output
	eof  bool
}

// startProcess runs the tmaflow command (the all-in-one) with args.
func startProcess(t *testing.T, args ...string) *process {
	t.Helper()
	return startCommand(t, envMain+"=1", args...)
}

// startService runs the service binary name (monitor, labeler, …) with
// args.
func startService(t *testing.T, name string, args ...string) *process {
	t.Helper()
	require.Contains(t, serviceNames(), name)
	return startCommand(t, envService+"="+name, args...)
}

// startCommand runs the test binary as a command, env selecting which,
// logging JSON. Its log is read as it comes, however long it runs.
func startCommand(t *testing.T, env string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-log.format=json"}, args...)...)
	cmd.Env = append(os.Environ(), env)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &process{cmd: cmd, more: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) != nil {
				t.Logf("tmaflow: %s", sc.Text())
				continue
			}
			p.mu.Lock()
			p.recs = append(p.recs, rec)
			close(p.more)
			p.more = make(chan struct{})
			p.mu.Unlock()
		}
		p.mu.Lock()
		p.eof = true
		close(p.more)
		p.mu.Unlock()
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		select {
		case err := <-p.done:
			p.done <- err
		default: // the test failed before stopping it
			_ = cmd.Process.Kill()
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
			}
		}
	})
	return p
}

// waitLog returns the first log record with msg, whether it was logged
// before or after the records waited for earlier (concurrent services log
// in either order), failing on a timeout.
func (p *process) waitLog(t *testing.T, msg string) map[string]any {
	t.Helper()
	return p.waitRecord(t, msg, func(map[string]any) bool { return true })
}

// waitRecord returns the first log record with msg that match accepts.
func (p *process) waitRecord(t *testing.T, msg string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		p.mu.Lock()
		for _, rec := range p.recs {
			if rec["msg"] == msg && match(rec) {
				p.mu.Unlock()
				return rec
			}
		}
		eof, more := p.eof, p.more
		p.mu.Unlock()
		require.False(t, eof, "the process exited before logging %q", msg)
		select {
		case <-more:
		case <-timeout:
			t.Fatalf("no %q in the process's log", msg)
		}
	}
}

func (p *process) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err // a second wait gets it too
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("the process did not exit")
		return nil
	}
}

// TestProcessSignals runs the tmaflow command: SIGHUP reloads the
// registry, SIGTERM stops it with exit code 0 and the embedded broker's
// data on disk.
func TestProcessSignals(t *testing.T) {
	dir := t.TempDir()
	regPath := filepath.Join(dir, "registry.yaml")
	example, err := os.ReadFile(exampleRegistry)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(regPath, example, 0o600))

	p := startProcess(t, "-data-dir="+dir, "-broker.listen-address=127.0.0.1:0",
		"-monitor.listen-address=127.0.0.1:0", "-bridge.listen-address=127.0.0.1:0", "-bridge.mqtt.listen-address=127.0.0.1:0", "-labeler.listen-address=127.0.0.1:0", "-persister.listen-address=127.0.0.1:0", "-ruler.listen-address=127.0.0.1:0", "-reporter.listen-address=127.0.0.1:0",
		"-monitor.auth.registry="+regPath)
	brokerAddr := p.waitLog(t, "kafka broker started")["addr"].(string)
	url := "http://" + p.waitLog(t, "monitor listening")["addr"].(string) + "/monitor"
	p.waitLog(t, "broker reachable, ready")

	body := fixture(t, "message-compact.json")
	require.Equal(t, http.StatusOK, post(t, url, body, demoProbe, demoSecret).code)

	// A probe added to the registry can post after SIGHUP.
	hash, err := registry.HashSecret("second-secret", registry.AlgoBcrypt)
	require.NoError(t, err)
	added := strings.Replace(string(example), "\nprobes:\n", "\nprobes:\n  - id: 5\n    name: second\n    tenant: other\n    secret_hash: \""+hash+"\"\n", 1)
	require.NotEqual(t, string(example), added)
	require.NoError(t, os.WriteFile(regPath, []byte(added), 0o600))
	second := []byte(strings.Replace(string(body), `"probeId":0`, `"probeId":5`, 1))
	require.Equal(t, http.StatusUnauthorized, post(t, url, second, "second", "second-secret").code)
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	p.waitLog(t, "reloaded")
	require.Equal(t, http.StatusOK, post(t, url, second, "second", "second-secret").code)

	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	p.waitLog(t, "shutting down")
	require.NoError(t, p.wait(t), "exit code 0 after SIGTERM")
	_, err = http.Get(url)
	require.Error(t, err, "listener closed")

	// Both records are in the data dir the process left behind.
	b := startBroker(t, filepath.Join(dir, "kafka"), brokerAddr)
	recs := readTopic(t, b.Addrs()[0])
	require.Len(t, recs, 2)
	tenants := map[string]bool{}
	for _, r := range recs {
		tenants[headers(r.Headers)["tenant"]] = true
	}
	require.Equal(t, map[string]bool{demoTenant: true, "other": true}, tenants)
}

func TestProcessHashSecret(t *testing.T) {
	cmd := exec.Command(os.Args[0], "hash-secret", "--algo", "bcrypt")
	cmd.Env = append(os.Environ(), envMain+"=1")
	cmd.Stdin = strings.NewReader("my-probe-secret\n")
	out, err := cmd.Output()
	require.NoError(t, err)
	hash := strings.TrimSpace(string(out))
	require.True(t, strings.HasPrefix(hash, "$2a$"), hash)

	f, err := registry.Parse("test", []byte("probes:\n  - id: 1\n    name: p\n    secret_hash: \""+hash+"\"\n"))
	require.NoError(t, err)
	r, err := registry.New(f, registry.Options{})
	require.NoError(t, err)
	_, ok := r.Verify("p", "my-probe-secret")
	require.True(t, ok)
}

func TestProcessRefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "unknown flag", args: []string{"-no-such-flag"}, wantCode: 2, wantErr: "no-such-flag"},
		{name: "unknown target", args: []string{"-target=nope"}, wantCode: 1, wantErr: `target \"nope\"`},
		{name: "no credentials registry", args: []string{"-broker.listen-address=127.0.0.1:0"}, wantCode: 1, wantErr: "auth.registry is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], tc.args...)
			cmd.Env = append(os.Environ(), envMain+"=1")
			cmd.Dir = t.TempDir()
			stderr, err := cmd.StderrPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			logs, err := io.ReadAll(stderr)
			require.NoError(t, err)
			err = cmd.Wait()
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit)
			require.Equal(t, tc.wantCode, exit.ExitCode())
			require.Contains(t, string(logs), tc.wantErr)
		})
	}
}
