package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/services/probe/internal/app"
)

// configServer serves a probe's remote configuration as the monitor
// does: the body and its signature header, for the right credentials.
type configServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	body []byte
	sig  string
}

func newConfigServer(t *testing.T) *configServer {
	c := &configServer{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "7" || p != "secret" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.body == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set(app.SignatureHeader, c.sig)
		_, _ = w.Write(c.body)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *configServer) serve(body []byte, sig []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.body, c.sig = body, base64.StdEncoding.EncodeToString(sig)
}

func TestRemoteConfig(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	_, otherKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	remoteCfg := func(version, url string) []byte {
		return []byte(fmt.Sprintf(`
version: %s
collectors:
  - {name: host, type: host, interval: 100ms, parts: [load]}
outputs:
  - name: central
    type: remote_write
    remote_write: {url: %q, timeout: 1s}
`, version, url))
	}
	for _, tc := range []struct {
		name string
		// serve the remote configuration; good is the receiver the
		// remote configuration ships to.
		serve      func(c *configServer, good, down *rwReceiver)
		wantSource string
		wantResult string
		// wantRemoteData: the remote configuration's receiver got data.
		wantRemoteData bool
	}{
		{name: "good signature applied", wantSource: "remote", wantResult: "applied", wantRemoteData: true,
			serve: func(c *configServer, good, _ *rwReceiver) {
				body := remoteCfg("v2", good.url())
				c.serve(body, ed25519.Sign(priv, body))
			}},
		{name: "bad signature refused", wantSource: "local", wantResult: "bad_signature",
			serve: func(c *configServer, good, _ *rwReceiver) {
				body := remoteCfg("v2", good.url())
				c.serve(body, ed25519.Sign(otherKey, body))
			}},
		{name: "invalid config refused", wantSource: "local", wantResult: "invalid",
			serve: func(c *configServer, _, _ *rwReceiver) {
				body := []byte("collectors: []\noutputs: []\n")
				c.serve(body, ed25519.Sign(priv, body))
			}},
		{name: "cannot ship: rolled back", wantSource: "local", wantResult: "rolled_back",
			serve: func(c *configServer, _, down *rwReceiver) {
				body := remoteCfg("v3", down.url())
				c.serve(body, ed25519.Sign(priv, body))
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			local, good, down := newRWReceiver(t), newRWReceiver(t), newRWReceiver(t)
			down.down.Store(true)
			cs := newConfigServer(t)
			dir := t.TempDir()
			cfgPath := filepath.Join(t.TempDir(), "probe.yaml")
			outputs := fmt.Sprintf(`outputs:
  - name: local
    type: remote_write
    remote_write: {url: %q}
%s`, local.url(), auditOutput(t))
			require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`
version: v1
collectors:
  - {name: host, type: host, interval: 100ms, parts: [load]}
%sremote_config:
  url: %q
  username: "7"
  password: secret
  public_key: %s
  interval: 100ms
  rollback_after: 1s
`, outputs, cs.srv.URL, base64.StdEncoding.EncodeToString(pub))), 0o644))
			p := startProbeFile(t, nil, cfgPath, dir)
			require.Eventually(t, func() bool { d, _ := local.counts(); return d > 5 }, 10*time.Second, 10*time.Millisecond)
			localBefore, _ := local.counts()
			tc.serve(cs, good, down)

			require.Eventually(t, func() bool {
				return p.metric(t, "probe_config_results_total", "result", tc.wantResult) >= 1
			}, 10*time.Second, 20*time.Millisecond)
			// Past the rollback deadline, the configuration in force.
			time.Sleep(1500 * time.Millisecond)
			require.Equal(t, 1.0, p.metric(t, "probe_config_info", "source", tc.wantSource))
			d, _ := good.counts()
			require.Equal(t, tc.wantRemoteData, d > 0)
			if tc.wantSource == "local" {
				// The local output went on, and after a rollback caught up
				// on what was sampled meanwhile: the buffer was kept.
				require.Eventually(t, func() bool { d, _ := local.counts(); return d > localBefore+20 }, 10*time.Second, 20*time.Millisecond)
				if tc.wantResult != "rolled_back" {
					require.Equal(t, -1.0, p.metric(t, "probe_config_results_total", "result", "rolled_back"), "nothing to roll back")
				}
			}
			p.stop(t)
			_, err := os.Stat(filepath.Join(dir, "remote-config.yaml"))
			require.Equal(t, tc.wantResult == "applied", err == nil, "a remote configuration that shipped is kept for restarts")
			if tc.wantResult == "rolled_back" {
				// The audit output kept every record: once drained, the
				// local output has them all, those sampled under the bad
				// configuration too.
				drain(t, dir, "local", outputs)
				want, got := sampled(t, dir, []string{"local", "audit"}), local.keys()
				require.Greater(t, len(want), 30)
				for k := range want {
					require.True(t, got[k], "sample %s sampled during the bad configuration was not shipped after the rollback", k)
				}
			}
		})
	}
}
