package service

import (
	"flag"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseEnvironment(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		wantDur time.Duration
		wantErr string
	}{
		{name: "defaults", want: "127.0.0.1:9092", wantDur: time.Second},
		{name: "environment", env: map[string]string{"TMAFLOW_KAFKA_BROKERS": "k:9092", "TMAFLOW_MONITOR_PUBLISH_TIMEOUT": "3s"}, want: "k:9092", wantDur: 3 * time.Second},
		{name: "command line wins", args: []string{"-kafka.brokers=cli:9092"}, env: map[string]string{"TMAFLOW_KAFKA_BROKERS": "env:9092"}, want: "cli:9092", wantDur: time.Second},
		{name: "bad environment value", env: map[string]string{"TMAFLOW_MONITOR_PUBLISH_TIMEOUT": "soon"}, wantErr: `environment TMAFLOW_MONITOR_PUBLISH_TIMEOUT="soon"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			var brokers string
			var timeout time.Duration
			fs.StringVar(&brokers, "kafka.brokers", "127.0.0.1:9092", "")
			Prefixed{FS: fs, Prefix: "monitor."}.DurationVar(&timeout, "publish-timeout", time.Second, "")
			err := Parse(fs, tc.args)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, brokers)
			require.Equal(t, tc.wantDur, timeout)
		})
	}
}

func TestStringList(t *testing.T) {
	var l StringList
	require.NoError(t, l.Set(" a:1, ,b:2 "))
	require.Equal(t, StringList{"a:1", "b:2"}, l)
	require.Equal(t, "a:1,b:2", l.String())
}

func TestProberEndpoints(t *testing.T) {
	p := NewProber()
	code := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		mux := http.NewServeMux()
		mux.Handle("/-/healthy", p.HealthyHandler())
		mux.Handle("/-/ready", p.ReadyHandler())
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	c, _ := code("/-/healthy")
	require.Equal(t, http.StatusServiceUnavailable, c)
	c, body := code("/-/ready")
	require.Equal(t, http.StatusServiceUnavailable, c)
	require.Contains(t, body, "starting")

	p.Healthy()
	p.Ready()
	c, _ = code("/-/healthy")
	require.Equal(t, http.StatusOK, c)
	c, _ = code("/-/ready")
	require.Equal(t, http.StatusOK, c)

	p.NotReady("shutting down")
	c, body = code("/-/ready")
	require.Equal(t, http.StatusServiceUnavailable, c)
	require.Contains(t, body, "shutting down")
	require.True(t, p.IsHealthy(), "not ready is still alive")
}
