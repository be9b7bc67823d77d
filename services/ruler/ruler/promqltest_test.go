package ruler

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/storage"
	"github.com/stretchr/testify/require"
)

// TestPromQLOnWindow runs Prometheus' own PromQL acceptance scripts with
// the ruler's window as the storage, so the functions rules rely on (rate,
// increase, avg_over_time, absent, aggregations, staleness …) answer on
// it exactly as on Prometheus' TSDB.
func TestPromQLOnWindow(t *testing.T) {
	engine := promqltest.NewTestEngine(t, false, 5*time.Minute, promqltest.DefaultMaxSamplesPerQuery)
	promqltest.RunBuiltinTestsWithStorage(skipScripts{t, "start_timestamps.test"}, engine, func(tb testing.TB) storage.Storage {
		// The scripts load data from the Unix epoch on: a window as long
		// as theirs.
		w, err := newWindow(t.TempDir(), (1000 * 24 * time.Hour).Milliseconds(), prometheus.NewRegistry(), nil)
		require.NoError(tb, err)
		return w
	})
}

// skipScripts leaves out the scripts of a feature the window does not
// store: start timestamps of samples (an experimental TSDB option; the
// sample batches carry none).
type skipScripts struct {
	*testing.T
	skip string
}

func (s skipScripts) Run(name string, f func(*testing.T)) bool {
	if strings.HasSuffix(name, s.skip) {
		return s.T.Run(name, func(t *testing.T) { t.Skip("start timestamps are not stored in the window") })
	}
	return s.T.Run(name, f)
}
