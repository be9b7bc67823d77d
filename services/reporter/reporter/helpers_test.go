package reporter

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/services/reporter/reporttest"
)

// published is a record the fake publisher took.
type published struct {
	topic, key, tenant string
	payload            []byte
}

// fakePublisher records what is published; fail, while set, refuses.
type fakePublisher struct {
	mu   sync.Mutex
	msgs []published
	fail error
}

func (p *fakePublisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	for _, m := range msgs {
		p.msgs = append(p.msgs, published{topic: topic, key: string(bus.Key(m)), tenant: m.Metadata.Get("tenant"), payload: m.Payload})
	}
	return nil
}

func (p *fakePublisher) Close() error { return nil }

func (p *fakePublisher) records() []published {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]published(nil), p.msgs...)
}

// day is the period the test data fills: 2026-11-01 UTC.
var day = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// fillDay writes known data for day, minute by minute, and a little
// around it that a report of day must not see:
//
//	demo_value{instance="a"} = minute of the day (0…1439), 1e6 just before and at the end
//	demo_value{instance="b"} = 5
//	demo_cycle{instance="a"} = 100 + 10·sin(2π·minute/60) + noise in [-1, 1)
//	up{instance="a"}         = 1 for 1296 minutes (90 %), then 0
//	ALERTS{alertname="High"} firing minutes 600…629, pending 595…599
func fillDay(t testing.TB, db *tsdb.DB) {
	t.Helper()
	a := labels.FromStrings("__name__", "demo_value", "instance", "a")
	b := labels.FromStrings("__name__", "demo_value", "instance", "b")
	cyc := labels.FromStrings("__name__", "demo_cycle", "instance", "a")
	up := labels.FromStrings("__name__", "up", "instance", "a")
	firing := labels.FromStrings("__name__", "ALERTS", "alertname", "High", "alertstate", "firing", "severity", "page")
	pending := labels.FromStrings("__name__", "ALERTS", "alertname", "High", "alertstate", "pending", "severity", "page")
	noise := rand.New(rand.NewPCG(3, 4))
	app := db.Appender(context.Background())
	add := func(l labels.Labels, ts time.Time, v float64) {
		_, err := app.Append(0, l, ts.UnixMilli(), v)
		require.NoError(t, err)
	}
	add(a, day.Add(-time.Minute), 1e6)
	add(b, day.Add(-time.Minute), 1e6)
	for i := range 1440 {
		ts := day.Add(time.Duration(i) * time.Minute)
		add(a, ts, float64(i))
		add(b, ts, 5)
		add(cyc, ts, 100+10*math.Sin(2*math.Pi*float64(i)/60)+noise.Float64()*2-1)
		add(up, ts, float64(btoi(i < 1296)))
		if i >= 595 && i < 600 {
			add(pending, ts, 1)
		}
		if i >= 600 && i < 630 {
			add(firing, ts, 1)
		}
	}
	add(a, day.Add(24*time.Hour), 1e6)
	add(b, day.Add(24*time.Hour), 1e6)
	require.NoError(t, app.Commit())
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// openTSDB opens an empty TSDB in a temporary directory.
func openTSDB(t testing.TB) *tsdb.DB {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	require.NoError(t, err)
	db.DisableCompactions()
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

// env is a reporter over a query API over a TSDB with fillDay's data.
type env struct {
	svc   *Service
	pub   *fakePublisher
	api   *reporttest.API
	cfg   Config
	clock *clock
}

// clock is a settable time.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// newEnv starts the query API and builds (not executes) a reporter on
// testdata/reports with a data dir of its own; opts may change the
// options before the reporter is built.
func newEnv(t *testing.T, opts func(*Config, *Options)) *env {
	t.Helper()
	db := openTSDB(t)
	fillDay(t, db)
	api := reporttest.NewAPI(db, "X-Scope-OrgID")
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	cfg := DefaultConfig()
	cfg.ListenAddress = "127.0.0.1:0"
	cfg.ReportsDir = "testdata/reports"
	cfg.DataDir = t.TempDir()
	cfg.Query.URL = srv.URL
	cfg.Run.MinBackoff = time.Millisecond
	e := &env{pub: &fakePublisher{}, api: api, clock: &clock{now: day.Add(24*time.Hour + 5*time.Minute)}}
	o := Options{Publisher: e.pub, Now: e.clock.Now}
	if opts != nil {
		opts(&cfg, &o)
	}
	svc, err := New(cfg, o)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, svc.Close()) })
	e.svc, e.cfg = svc, cfg
	return e
}

// daily is the report of testdata/reports/demo/daily.yaml.
func (e *env) daily(t *testing.T) Report {
	t.Helper()
	r, ok := e.svc.report("demo", "daily")
	require.True(t, ok)
	return r
}
