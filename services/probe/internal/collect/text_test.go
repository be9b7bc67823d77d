package collect

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const exposition = `# TYPE app_requests_total counter
app_requests_total{code="200"} 42
app_requests_total{code="500"} 3 1700000000000
# TYPE app_temp gauge
app_temp 21.5
`

func TestTextInputs(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			_, _ = w.Write([]byte("not { text"))
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = w.Write([]byte(exposition))
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "app.prom")
	require.NoError(t, os.WriteFile(file, []byte(exposition), 0o644))
	now := time.UnixMilli(1_700_000_500_000)
	for _, tc := range []struct {
		name    string
		c       Collector
		wantErr string
	}{
		{name: "scrape", c: Scrape{URL: srv.URL + "/metrics", Client: srv.Client(), Timeout: time.Second}},
		{name: "file", c: File{Path: file}},
		{name: "command", c: Command{Args: []string{"cat", file}, Timeout: time.Second}},
		{name: "bad body", c: Scrape{URL: srv.URL + "/bad", Client: srv.Client(), Timeout: time.Second}, wantErr: "parse"},
		{name: "missing file", c: File{Path: file + ".missing"}, wantErr: "no such file"},
		{name: "failing command", c: Command{Args: []string{"false"}, Timeout: time.Second}, wantErr: "run false"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			series, err := tc.c.Collect(context.Background(), now)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			got := map[string][2]float64{}
			for _, s := range series {
				for _, smp := range s.Samples {
					got[key(s)] = [2]float64{float64(smp.TimestampMs), smp.Value}
				}
			}
			require.Equal(t, map[string][2]float64{
				`app_requests_total{code="200"}`: {float64(now.UnixMilli()), 42},
				`app_requests_total{code="500"}`: {1700000000000, 3},
				`app_temp`:                       {float64(now.UnixMilli()), 21.5},
			}, got)
		})
	}
}
