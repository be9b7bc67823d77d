// Package peertest runs the real peers that integration tests talk to —
// Debian's prometheus-alertmanager, promtool, kcat, nats-server — and a webhook that
// records what Alertmanager notifies. A missing binary skips the test,
// except in CI (CI=true), where .ci/run installs every peer and a missing
// one fails.
package peertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary returns the path of the peer name.
func Binary(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not installed (.ci/run installs it)", name)
	}
	t.Skipf("%s is not installed", name)
	return ""
}

// FreeAddr returns a loopback address with a port free right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("free port: %v", err)
	}
	return addr
}

// Notification is one webhook notification of Alertmanager.
type Notification struct {
	At     time.Time `json:"-"` // when it arrived
	Status string    `json:"status"`
	Alerts []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		StartsAt    time.Time         `json:"startsAt"`
	} `json:"alerts"`
}

// Webhook records the notifications posted to it.
type Webhook struct {
	URL string

	mu    sync.Mutex
	posts []Notification
	ch    chan struct{} // closed and replaced on every post
}

// NewWebhook serves a webhook receiver until the test ends.
func NewWebhook(t testing.TB) *Webhook {
	w := &Webhook{ch: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var n Notification
		body, err := io.ReadAll(r.Body)
		if err == nil {
			err = json.Unmarshal(body, &n)
		}
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		n.At = time.Now()
		w.mu.Lock()
		w.posts = append(w.posts, n)
		close(w.ch)
		w.ch = make(chan struct{})
		w.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	w.URL = srv.URL
	return w
}

// Received returns the notifications so far.
func (w *Webhook) Received() []Notification {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Notification(nil), w.posts...)
}

// Await waits until a notification satisfies match and returns it.
func (w *Webhook) Await(t testing.TB, timeout time.Duration, match func(Notification) bool) Notification {
	t.Helper()
	deadline := time.After(timeout)
	seen := 0
	for {
		w.mu.Lock()
		posts, ch := w.posts[seen:], w.ch
		seen = len(w.posts)
		w.mu.Unlock()
		for _, n := range posts {
			if match(n) {
				return n
			}
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no matching notification in %s; received %+v", timeout, w.Received())
			return Notification{}
		}
	}
}

// Alertmanager runs Debian's Alertmanager until the test ends, with one
// webhook receiver notified at once (group_wait 0s) of each group of
// groupBy labels, resolutions included, and returns its URL.
func Alertmanager(t testing.TB, hookURL string, groupBy ...string) string {
	t.Helper()
	bin := Binary(t, "prometheus-alertmanager")
	if len(groupBy) == 0 {
		groupBy = []string{"alertname"}
	}
	by, err := json.Marshal(groupBy)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`route:
  receiver: hook
  group_by: %s
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
- name: hook
  webhook_configs:
  - url: %s
    send_resolved: true
`, by, hookURL)
	cfgPath := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin,
		"--config.file="+cfgPath,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start alertmanager: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait() // killed: its exit status says so
	})
	url := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alertmanager at %s not ready: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// NATSServer runs Debian's nats-server with JetStream storing in dir,
// listening on addr (host:port), with extra arguments (--user u --pass
// p), until the test ends (SIGTERM), and waits until it accepts
// connections. It returns the process so that a test can kill it; a
// failed test logs the server's output.
func NATSServer(t testing.TB, addr, dir string, args ...string) *exec.Cmd {
	t.Helper()
	bin := Binary(t, "nats-server")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("nats-server address %q: %v", addr, err)
	}
	cmd := exec.Command(bin, append([]string{"-a", host, "-p", port, "-js", "-sd", dir}, args...)...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // already gone: Wait says so
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("nats-server output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			_ = c.Close()
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server did not listen on %s: %v\n%s", addr, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a buffer written by a process and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	return len(p), nil
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

// AwaitReady waits until url (a /-/ready endpoint) answers 200, polling
// every 50ms, and fails the test after timeout.
func AwaitReady(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %s: %v", url, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
