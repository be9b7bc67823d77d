package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/peertest"
)

// TestTMAToTmaflow: the all-in-one (monitor, labeler, persister, as
// make run starts them) serves the probe a signed remote configuration
// on GET /probe/config; the probe switches from remote_write to TMA JSON
// on POST /monitor, and every sample the monitor acknowledged is queried
// back from the persister under the registry's name for the description.
func TestTMAToTmaflow(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the all-in-one")
	}
	// TMAFLOW_BIN names a prebuilt all-in-one (one built from a
	// consistent tree while the workspace is being edited).
	bin := os.Getenv("TMAFLOW_BIN")
	if bin == "" {
		bin = filepath.Join(t.TempDir(), "tmaflow")
		build := exec.Command("go", "build", "-o", bin, ".")
		build.Dir = filepath.Join("..", "tmaflow")
		out, err := build.CombinedOutput()
		require.NoError(t, err, string(out))
	}

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	regDir := t.TempDir()
	reg, err := os.ReadFile(filepath.Join("..", "..", "examples", "registry.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(regDir, "registry.yaml"), reg, 0o600))
	require.NoError(t, os.Mkdir(filepath.Join(regDir, "probes"), 0o755))

	monitor, api := peertest.FreeAddr(t), peertest.FreeAddr(t)
	// Probe 0 of examples/registry.yaml; description 0 is cpu_usage
	// (cpu_usage_percent), resource 101098 demo-host.
	remote := []byte(fmt.Sprintf(`
version: tma-v1
collectors:
  - {name: host, type: host, interval: 100ms, parts: [load]}
outputs:
  - name: tma
    type: tma
    tma:
      url: http://%s/monitor
      username: probe-python-demo
      password: demo-secret
      probe_id: 0
      resource_id: 101098
      mappings:
        - {metric: node_load1, description_id: 0}
`, monitor))
	require.NoError(t, os.WriteFile(filepath.Join(regDir, "probes", "0.yaml"), remote, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(regDir, "probes", "0.yaml.sig"), []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(priv, remote))), 0o600))

	startPeer(t, bin, "-target=monitor,labeler,persister", "-data-dir="+t.TempDir(),
		"-registry="+filepath.Join(regDir, "registry.yaml"),
		"-broker.listen-address=127.0.0.1:0", "-monitor.listen-address="+monitor,
		"-labeler.listen-address=127.0.0.1:0", "-persister.listen-address="+api,
		"-monitor.ready-check-interval=100ms", "-persister.ready.settle=100ms")
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + monitor + "/-/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 50*time.Millisecond)

	p := startProbe(t, nil, fmt.Sprintf(`
version: local
collectors:
  - {name: host, type: host, interval: 1s, parts: [load]}
outputs:
  - name: rw
    type: remote_write
    remote_write: {url: "http://%s/api/v1/write", bearer_token: "probe-python-demo:demo-secret"}
remote_config:
  url: http://%s/probe/config
  username: probe-python-demo
  password: demo-secret
  public_key: %s
  interval: 200ms
  rollback_after: 2s
`, monitor, monitor, base64.StdEncoding.EncodeToString(pub)), t.TempDir())
	require.Eventually(t, func() bool { return p.metric(t, "probe_config_info", "source", "remote", "version", "tma-v1") == 1 }, 20*time.Second, 50*time.Millisecond)
	time.Sleep(2500 * time.Millisecond) // past rollback_after: kept
	require.Equal(t, 2.0, p.metric(t, "probe_config_results_total", "result", "applied"), "the local file, then the remote")
	require.Equal(t, -1.0, p.metric(t, "probe_config_results_total", "result", "rolled_back"))
	// Stop sampling-and-sending at a known count: SIGTERM, then what
	// the monitor acknowledged is the last count read before.
	require.Eventually(t, func() bool { return p.metric(t, "probe_queue_buffered_samples", "output", "tma") == 0 }, 20*time.Second, 50*time.Millisecond)
	// Delivered samples less those the TMA output left out (node_load5
	// and 15, the configuration report): what the monitor acknowledged.
	sent := p.metric(t, "probe_output_sent_samples_total", "output", "tma") - p.metric(t, "probe_output_unmapped_samples_total", "output", "tma")
	require.Greater(t, sent, 10.0)
	p.stop(t)
	// Samples sent between the read and the stop make the stored count
	// larger, never smaller: every acknowledged sample is stored.
	var stored float64
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		stored = queryAPI(t, api, `sum(count_over_time(cpu_usage_percent{resource="demo-host"}[10m]))`)
		if stored >= sent {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("sent %v, stored %v", sent, stored)
	require.GreaterOrEqual(t, stored, sent, "every acknowledged sample is stored")
	require.Less(t, stored, sent+20, "no more than was sent after the count was read")
}

// queryAPI runs an instant query against the persister's API as the
// demo probe and returns the first result's value (-1 without one).
func queryAPI(t *testing.T, api, query string) float64 {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+api+"/api/v1/query?query="+url.QueryEscape(query), nil)
	require.NoError(t, err)
	req.SetBasicAuth("probe-python-demo", "demo-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil || len(body.Data.Result) == 0 {
		return -1
	}
	var v float64
	_, err = fmt.Sscan(body.Data.Result[0].Value[1].(string), &v)
	require.NoError(t, err)
	return v
}
