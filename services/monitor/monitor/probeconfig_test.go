package monitor

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestProbeConfig(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "registry.yaml")
	writeFile(t, reg, fixture(t, "registry.yaml"))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "probes"), 0o755))
	body := []byte("version: v2\ncollectors: []\n")
	writeFile(t, filepath.Join(dir, "probes", "1.yaml"), body)
	writeFile(t, filepath.Join(dir, "probes", "1.yaml.sig"), []byte("c2lnbmF0dXJl\n"))
	// Probe 2 has a configuration without its signature: none is served.
	writeFile(t, filepath.Join(dir, "probes", "2.yaml"), body)

	cfg := testConfig()
	cfg.Auth.Registry = reg
	h := start(t, cfg, Options{Publisher: &fakePublisher{}})
	for _, tc := range []struct {
		name, method, user, pass, etag string
		wantCode                       int
		wantBody                       string
	}{
		{name: "own configuration", user: "1", pass: "probe-one-secret", wantCode: 200, wantBody: string(body)},
		{name: "by probe name", user: "probe-one", pass: "probe-one-secret", wantCode: 200, wantBody: string(body)},
		{name: "unchanged", user: "1", pass: "probe-one-secret", etag: "from-first", wantCode: 304},
		{name: "unsigned is not served", user: "2", pass: "probe-two-secret", wantCode: 404},
		{name: "wrong secret", user: "1", pass: "nope", wantCode: 401},
		{name: "no credentials", wantCode: 401},
		{name: "post refused", method: http.MethodPost, user: "1", pass: "probe-one-secret", wantCode: 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			req, err := http.NewRequest(method, h.url+ProbeConfigPath, nil)
			require.NoError(t, err)
			if tc.user != "" {
				req.SetBasicAuth(tc.user, tc.pass)
			}
			if tc.etag != "" {
				first, err := http.NewRequest(http.MethodGet, h.url+ProbeConfigPath, nil)
				require.NoError(t, err)
				first.SetBasicAuth(tc.user, tc.pass)
				resp, err := http.DefaultClient.Do(first)
				require.NoError(t, err)
				require.NoError(t, resp.Body.Close())
				req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer func() { require.NoError(t, resp.Body.Close()) }()
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, tc.wantCode, resp.StatusCode, string(b))
			if tc.wantCode == 200 {
				require.Equal(t, tc.wantBody, string(b))
				require.Equal(t, "c2lnbmF0dXJl", resp.Header.Get(ProbeConfigSignatureHeader))
			}
		})
	}
}
