package reporter

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLoadCredentials(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		want    map[string]Credentials
		wantErr string
	}{
		{name: "password and password file", file: "demo: {username: probe-python-demo, password: demo-secret}\nacme: {username: p, password_file: secret.txt}\n",
			want: map[string]Credentials{"demo": {"probe-python-demo", "demo-secret"}, "acme": {"p", "from-file"}}},
		{name: "both", file: "demo: {username: u, password: x, password_file: secret.txt}\n", wantErr: "give one of password and password_file"},
		{name: "no username", file: "demo: {password: x}\n", wantErr: "tenant demo: username missing"},
		{name: "missing password file", file: "demo: {username: u, password_file: nope.txt}\n", wantErr: "nope.txt"},
		{name: "unknown field", file: "demo: {user: u}\n", wantErr: "field user not found"},
		{name: "bad tenant", file: "'a/b': {username: u, password: x}\n", wantErr: `"a/b" is not a valid tenant`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "secret.txt"), []byte("from-file\n"), 0o600))
			path := filepath.Join(dir, "creds.yaml")
			require.NoError(t, os.WriteFile(path, []byte(tc.file), 0o600))
			got, err := LoadCredentials(path)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// TestQueriesCarryTenantAndCredentials: each tenant's queries carry its
// header and, where configured, its credentials.
func TestQueriesCarryTenantAndCredentials(t *testing.T) {
	type seen struct{ tenant, user, pass string }
	var (
		mu  sync.Mutex
		got []seen
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		mu.Lock()
		got = append(got, seen{r.Header.Get("X-Scope-OrgID"), u, p})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
		if err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()
	qf := NewQuerierFor(QueryConfig{URL: srv.URL, TenantHeader: "X-Scope-OrgID"}, map[string]Credentials{"demo": {"probe", "secret"}}, nil)
	for _, tenant := range []string{"demo", "acme"} {
		q, err := qf(tenant)
		require.NoError(t, err)
		_, _, err = q.Query(context.Background(), "up", time.Unix(0, 0))
		require.NoError(t, err)
	}
	require.Equal(t, []seen{{"demo", "probe", "secret"}, {"acme", "", ""}}, got)
}
