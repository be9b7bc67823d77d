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
//
// The second run reads through the queryable rules use, which serves
// instant selectors from the newest sample of each series: every script
// must give the same answers through it.
func TestPromQLOnWindow(t *testing.T) {
	lookback := 5 * time.Minute
	for _, viaRules := range []bool{false, true} {
		var served, read int64
		t.Run(map[bool]string{false: "head", true: "rule_queryable"}[viaRules], func(t *testing.T) {
			engine := promqltest.NewTestEngine(t, false, lookback, promqltest.DefaultMaxSamplesPerQuery)
			promqltest.RunBuiltinTestsWithStorage(skipScripts{t, "start_timestamps.test"}, engine, func(tb testing.TB) storage.Storage {
				// The scripts load data from the Unix epoch on: a window as
				// long as theirs.
				w, err := newWindow(t.TempDir(), (1000 * 24 * time.Hour).Milliseconds(), prometheus.NewRegistry(), nil)
				require.NoError(tb, err)
				if viaRules {
					tb.Cleanup(func() { served += w.latest.served.Load(); read += w.latest.read.Load() })
					return ruleStorage{window: w, q: w.ruleQueryable(lookback)}
				}
				return w
			})
		})
		if viaRules {
			t.Logf("series served their newest sample: %d, read from the head: %d", served, read)
			require.Greater(t, served, int64(1000), "the scripts exercise the newest-sample path")
			require.Greater(t, read, int64(1000), "and the head path")
		}
	}
}

// ruleStorage is the window read through the rules' queryable.
type ruleStorage struct {
	*window
	q storage.Queryable
}

func (s ruleStorage) Querier(mint, maxt int64) (storage.Querier, error) {
	return s.q.Querier(mint, maxt)
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
