package reporter

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// periodsOf are the period starts of the published documents.
func periodsOf(t *testing.T, recs []published) []time.Time {
	t.Helper()
	var out []time.Time
	for _, r := range recs {
		var d Document
		require.NoError(t, json.Unmarshal(r.payload, &d))
		out = append(out, d.Period.Start)
	}
	return out
}

func TestCatchUpAfterDowntime(t *testing.T) {
	tests := []struct {
		name        string
		maxCatchUp  int
		lastRun     time.Time // zero: never ran
		now         time.Time
		wantPeriods []time.Time
		wantSkipped float64
	}{
		{name: "first start runs nothing", now: day.Add(72 * time.Hour)},
		{name: "up to date", lastRun: day.Add(24*time.Hour + 5*time.Minute), now: day.Add(30 * time.Hour), maxCatchUp: 12},
		{name: "three days down", lastRun: day.Add(5 * time.Minute), now: day.Add(3*24*time.Hour + 10*time.Hour), maxCatchUp: 12,
			wantPeriods: []time.Time{day, day.Add(24 * time.Hour), day.Add(48 * time.Hour)}},
		{name: "more missed than made up", lastRun: day.Add(5 * time.Minute), now: day.Add(3*24*time.Hour + 10*time.Hour), maxCatchUp: 2,
			wantPeriods: []time.Time{day.Add(24 * time.Hour), day.Add(48 * time.Hour)}, wantSkipped: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config, _ *Options) {
				if tc.maxCatchUp > 0 {
					c.Run.MaxCatchUp = tc.maxCatchUp
				}
			})
			if !tc.lastRun.IsZero() {
				require.NoError(t, e.svc.store.SetLastRun("demo", "daily", tc.lastRun))
			}
			e.clock.Set(tc.now)
			e.svc.Tick(context.Background())
			require.Equal(t, tc.wantPeriods, periodsOf(t, e.pub.records()))
			require.InDelta(t, tc.wantSkipped, testutil.ToFloat64(e.svc.metrics.skipped.WithLabelValues("demo", "daily")), 0)
			require.InDelta(t, float64(len(tc.wantPeriods)), testutil.ToFloat64(e.svc.metrics.runs.WithLabelValues("demo", "daily", statusSuccess)), 0)

			// The last run is on disk: a restart at the same time runs nothing.
			last, ok, err := e.svc.store.LastRun("demo", "daily")
			require.NoError(t, err)
			require.True(t, ok)
			if len(tc.wantPeriods) > 0 {
				require.Equal(t, tc.wantPeriods[len(tc.wantPeriods)-1].Add(24*time.Hour+5*time.Minute), last)
			}
			restarted := newEnvOn(t, e.cfg)
			restarted.clock.Set(tc.now)
			restarted.svc.Tick(context.Background())
			require.Empty(t, restarted.pub.records())
		})
	}
}

// newEnvOn builds a second reporter on cfg's data dir, as after a restart.
func newEnvOn(t *testing.T, cfg Config) *env {
	t.Helper()
	e := &env{pub: &fakePublisher{}, clock: &clock{}, cfg: cfg}
	svc, err := New(cfg, Options{Publisher: e.pub, Now: e.clock.Now})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	e.svc = svc
	return e
}

// flakyQuerier fails its first fails calls.
type flakyQuerier struct {
	Querier
	mu    sync.Mutex
	fails int
}

func (q *flakyQuerier) fail() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fails > 0 {
		q.fails--
		return errors.New("query api unavailable")
	}
	return nil
}

func (q *flakyQuerier) Query(ctx context.Context, query string, ts time.Time, opts ...v1.Option) (model.Value, v1.Warnings, error) {
	if err := q.fail(); err != nil {
		return nil, nil, err
	}
	return q.Querier.Query(ctx, query, ts, opts...)
}

func TestFailedRunIsRetriedAndNeverHalfPublished(t *testing.T) {
	tests := []struct {
		name         string
		queryFails   int
		publishFails bool
		wantOK       bool
		wantRetries  float64
		wantBackoffs []time.Duration
	}{
		{name: "query fails twice", queryFails: 2, wantOK: true, wantRetries: 2, wantBackoffs: []time.Duration{time.Millisecond, 2 * time.Millisecond}},
		{name: "query keeps failing", queryFails: 1000, wantRetries: 3, wantBackoffs: []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond}},
		{name: "publish keeps failing", publishFails: true, wantRetries: 3, wantBackoffs: []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var (
				mu       sync.Mutex
				backoffs []time.Duration
			)
			e := newEnv(t, func(c *Config, o *Options) {
				inner := NewQuerierFor(c.Query, nil, nil)
				flaky := &flakyQuerier{fails: tc.queryFails}
				o.Queriers = func(tenant string) (Querier, error) {
					q, err := inner(tenant)
					flaky.Querier = q
					return flaky, err
				}
				o.Sleep = func(ctx context.Context, d time.Duration) bool {
					mu.Lock()
					defer mu.Unlock()
					backoffs = append(backoffs, d)
					return true
				}
			})
			if tc.publishFails {
				e.pub.fail = errors.New("broker down")
			}
			require.NoError(t, e.svc.store.SetLastRun("demo", "daily", day.Add(5*time.Minute)))
			e.svc.Tick(context.Background())

			require.Equal(t, tc.wantBackoffs, backoffs)
			require.InDelta(t, tc.wantRetries, testutil.ToFloat64(e.svc.metrics.runs.WithLabelValues("demo", "daily", statusRetry)), 0)
			last, _, err := e.svc.store.LastRun("demo", "daily")
			require.NoError(t, err)
			jsons, err := filepath.Glob(filepath.Join(e.cfg.DataDir, "reports", "demo", "daily", "*.json"))
			require.NoError(t, err)
			if tc.wantOK {
				require.Len(t, e.pub.records(), 1)
				require.Len(t, jsons, 1)
				require.Equal(t, day.Add(24*time.Hour+5*time.Minute), last)
				return
			}
			require.Empty(t, e.pub.records(), "nothing published")
			require.InDelta(t, 1, testutil.ToFloat64(e.svc.metrics.runs.WithLabelValues("demo", "daily", statusFailed)), 0)
			require.Equal(t, day.Add(5*time.Minute), last, "the failed run is made up at the next start")
			if !tc.publishFails {
				require.Empty(t, jsons, "no document without every panel")
			}
		})
	}
}

func TestReloadKeepsDefinitionsOnError(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "demo"), 0o755))
	good, err := os.ReadFile("testdata/reports/demo/daily.yaml")
	require.NoError(t, err)
	file := filepath.Join(dir, "demo", "daily.yaml")
	require.NoError(t, os.WriteFile(file, good, 0o644))
	e := newEnv(t, func(c *Config, _ *Options) { c.ReportsDir = dir })
	require.NoError(t, os.WriteFile(file, []byte(strings.Replace(string(good), "period: day", "period: someday", 1)), 0o644))
	err = e.svc.Reload()
	require.ErrorContains(t, err, "daily.yaml:3: report \"daily\": period \"someday\"")
	_, ok := e.svc.report("demo", "daily")
	require.True(t, ok, "the previous definitions stay")
	require.InDelta(t, 0, testutil.ToFloat64(e.svc.metrics.reloadOK), 0)
	require.NoError(t, os.WriteFile(file, good, 0o644))
	require.NoError(t, e.svc.Reload())
	require.InDelta(t, 1, testutil.ToFloat64(e.svc.metrics.reloadOK), 0)
}

func TestHTTP(t *testing.T) {
	e := newEnv(t, nil)
	done := make(chan error, 1)
	go func() { done <- e.svc.Execute() }()
	t.Cleanup(func() {
		e.svc.Interrupt(nil)
		require.NoError(t, <-done)
	})
	base := "http://" + e.svc.Addr()
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 10*time.Second, 10*time.Millisecond)

	get := func(path string) (int, http.Header, string) {
		resp, err := http.Get(base + path)
		require.NoError(t, err)
		defer func() { require.NoError(t, resp.Body.Close()) }()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, resp.Header, string(b)
	}
	post := func(path string) (int, string) {
		resp, err := http.Post(base+path, "", nil)
		require.NoError(t, err)
		defer func() { require.NoError(t, resp.Body.Close()) }()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}

	code, body := post("/api/v1/reports/demo/daily/run?at=2026-11-02T00:05:00Z")
	require.Equal(t, http.StatusOK, code, body)
	var doc Document
	require.NoError(t, json.Unmarshal([]byte(body), &doc))
	require.Equal(t, day, doc.Period.Start)

	tests := []struct {
		name, path   string
		wantCode     int
		wantType     string
		wantContains string
	}{
		{name: "index", path: "/reports", wantCode: 200, wantType: "text/html; charset=utf-8", wantContains: Base(&doc) + ".html"},
		{name: "index of a tenant", path: "/reports?tenant=demo", wantCode: 200, wantContains: "Daily demo"},
		{name: "index names files by kind", path: "/reports", wantCode: 200, wantContains: ">1.csv</a>"},
		{name: "index of another tenant", path: "/reports?tenant=acme", wantCode: 200, wantContains: "no reports yet"},
		{name: "list", path: "/api/v1/reports?tenant=demo", wantCode: 200, wantType: "application/json", wantContains: doc.ID},
		{name: "view", path: "/reports/demo/daily/" + Base(&doc) + ".html", wantCode: 200, wantType: "text/html; charset=utf-8", wantContains: "<svg"},
		{name: "csv download", path: "/reports/demo/daily/" + doc.Panels[0].CSV, wantCode: 200, wantType: "text/csv; charset=utf-8", wantContains: "1367.05"},
		{name: "document", path: "/reports/demo/daily/" + Base(&doc) + ".json", wantCode: 200, wantType: "application/json", wantContains: doc.ID},
		{name: "missing file", path: "/reports/demo/daily/nope.html", wantCode: 404},
		{name: "hidden file", path: "/reports/demo/daily/.x", wantCode: 400},
		{name: "bad tenant", path: "/reports/..%2F/daily/x.html", wantCode: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, h, body := get(tc.path)
			require.Equal(t, tc.wantCode, code, body)
			if tc.wantType != "" {
				require.Equal(t, tc.wantType, h.Get("Content-Type"))
			}
			require.Contains(t, body, tc.wantContains)
		})
	}
	t.Run("list is camelCase like the document", func(t *testing.T) {
		_, _, body := get("/api/v1/reports?tenant=demo")
		var list []map[string]json.RawMessage
		require.NoError(t, json.Unmarshal([]byte(body), &list))
		require.Len(t, list, 1)
		require.ElementsMatch(t, []string{"tenant", "report", "base", "title", "id", "start", "end", "files"}, slices.Collect(maps.Keys(list[0])))
		for key, want := range map[string]any{"tenant": "demo", "report": "daily", "id": doc.ID, "base": Base(&doc), "start": doc.Period.Start} {
			wantJSON, err := json.Marshal(want)
			require.NoError(t, err)
			require.JSONEq(t, string(wantJSON), string(list[0][key]), key)
		}
	})
	code, _ = post("/api/v1/reports/demo/nope/run")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = post("/api/v1/reports/demo/daily/run?at=yesterday")
	require.Equal(t, http.StatusBadRequest, code)
	_, _, metrics := get("/metrics")
	require.Contains(t, metrics, `tmaflow_reporter_runs_total{report="daily",status="success",tenant="demo"} 1`)
}

// TestLastSuccessIsRunTime: the last-success metric is the clock's time
// when a run succeeded, not its scheduled time, which a run asked for
// with ?at= may put in the future (hiding staleness) or the past.
func TestLastSuccessIsRunTime(t *testing.T) {
	tests := []struct {
		name string
		now  time.Time
		// at is the ?at= of a run asked for over HTTP; zero: a
		// scheduled run made up by Tick.
		at time.Time
	}{
		{name: "asked for with at in the future", now: day.Add(33*time.Hour + 2*time.Minute), at: day.Add(47*time.Hour + 10*time.Minute)},
		{name: "asked for with at in the past", now: day.Add(4 * 24 * time.Hour), at: day.Add(24*time.Hour + 5*time.Minute)},
		{name: "scheduled run made up late", now: day.Add(27 * time.Hour)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.clock.Set(tc.now)
			if tc.at.IsZero() {
				require.NoError(t, e.svc.store.SetLastRun("demo", "daily", day.Add(5*time.Minute)))
				e.svc.Tick(context.Background())
				require.Len(t, e.pub.records(), 1)
			} else {
				mux := http.NewServeMux()
				e.svc.registerHTTP(mux)
				rec := httptest.NewRecorder()
				mux.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/v1/reports/demo/daily/run?at="+tc.at.Format(time.RFC3339), nil))
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			}
			got := testutil.ToFloat64(e.svc.metrics.lastSuccess.WithLabelValues("demo", "daily"))
			require.InDelta(t, float64(tc.now.Unix()), got, 0, "last success %s, want %s", time.Unix(int64(got), 0).UTC(), tc.now)
		})
	}
}
