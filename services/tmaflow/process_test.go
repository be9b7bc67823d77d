package main_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/registry"
	"github.com/tmaflow/tmaflow/services/tmaflow/app"
)

// envMain makes the test binary run tmaflow's main instead of the tests, so
// process tests exercise the real signal handling without a go build.
const envMain = "TMAFLOW_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envMain) == "1" {
		os.Exit(app.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

type process struct {
	cmd  *exec.Cmd
	logs chan map[string]any
	seen []map[string]any // records read so far, so waits need not follow log order
	done chan error
}

func startProcess(t *testing.T, args ...string) *process {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-log.format=json"}, args...)...)
	cmd.Env = append(os.Environ(), envMain+"=1")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &process{cmd: cmd, logs: make(chan map[string]any, 1000), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				p.logs <- rec
			} else {
				t.Logf("tmaflow: %s", sc.Text())
			}
		}
		close(p.logs)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill() // the test failed before stopping it
		}
	})
	return p
}

// waitLog returns the first log record with msg, whether it was logged
// before or after the records waited for earlier (concurrent services log
// in either order), failing on a timeout.
func (p *process) waitLog(t *testing.T, msg string) map[string]any {
	t.Helper()
	for _, rec := range p.seen {
		if rec["msg"] == msg {
			return rec
		}
	}
	timeout := time.After(20 * time.Second)
	for {
		select {
		case rec, ok := <-p.logs:
			require.True(t, ok, "tmaflow exited before logging %q", msg)
			p.seen = append(p.seen, rec)
			if rec["msg"] == msg {
				return rec
			}
		case <-timeout:
			t.Fatalf("no %q in tmaflow's log", msg)
		}
	}
}

func (p *process) wait(t *testing.T) error {
	t.Helper()
	for range p.logs { // drain so the reader can finish
	}
	select {
	case err := <-p.done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("tmaflow did not exit")
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
