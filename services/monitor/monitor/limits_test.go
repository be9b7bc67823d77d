package monitor

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// switchPublisher is a fakePublisher whose broker can go down.
type switchPublisher struct {
	fakePublisher
	down atomic.Bool
}

func (p *switchPublisher) Publish(topic string, msgs ...*message.Message) error {
	if p.down.Load() {
		return errors.New("broker down")
	}
	return p.fakePublisher.Publish(topic, msgs...)
}

func TestTenantLimiter(t *testing.T) {
	type step struct {
		after    time.Duration // clock advance before the take
		tenant   string
		n        int
		wantOK   bool
		wantWait time.Duration
	}
	tests := []struct {
		name  string
		cfg   LimitsConfig
		steps []step
	}{
		{
			name: "burst then refill", cfg: LimitsConfig{SamplesPerSecond: 10, SamplesBurst: 20},
			steps: []step{
				{tenant: "a", n: 20, wantOK: true},
				{tenant: "a", n: 5, wantWait: 500 * time.Millisecond},
				{tenant: "b", n: 20, wantOK: true}, // tenants are apart
				{after: 500 * time.Millisecond, tenant: "a", n: 5, wantOK: true},
				{after: 10 * time.Second, tenant: "a", n: 20, wantOK: true}, // refilled to the burst, not beyond
				{tenant: "a", n: 1, wantWait: 100 * time.Millisecond},
			},
		},
		{
			name: "burst defaults to one second", cfg: LimitsConfig{SamplesPerSecond: 100},
			steps: []step{
				{tenant: "a", n: 100, wantOK: true},
				{tenant: "a", n: 1, wantWait: 10 * time.Millisecond},
			},
		},
		{
			name: "larger than the burst waits for a full bucket", cfg: LimitsConfig{SamplesPerSecond: 10, SamplesBurst: 10},
			steps: []step{
				{tenant: "a", n: 5, wantOK: true},
				{tenant: "a", n: 50, wantWait: 500 * time.Millisecond},
			},
		},
		{
			name: "no limit", cfg: LimitsConfig{},
			steps: []step{{tenant: "a", n: 1 << 30, wantOK: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			l := newTenantLimiter(tt.cfg, func() time.Time { return now })
			for i, s := range tt.steps {
				now = now.Add(s.after)
				ok, wait := l.take(s.tenant, s.n)
				require.Equal(t, s.wantOK, ok, "step %d", i)
				require.InDelta(t, s.wantWait, wait, float64(time.Millisecond), "step %d", i)
			}
		})
	}
	require.Equal(t, []string{"1"}, retryAfter(10*time.Millisecond))
	require.Equal(t, []string{"3"}, retryAfter(2100*time.Millisecond))
}

// TestLimits: per-tenant samples/s (429 with Retry-After, other tenants
// unaffected, samples refused by the broker not counted) and series per
// request (413).
func TestLimits(t *testing.T) {
	cfg := testConfig()
	cfg.Limits = LimitsConfig{SamplesPerSecond: 1, SamplesBurst: 4, MaxSeriesPerRequest: 3}
	pub := &switchPublisher{}
	h := start(t, cfg, Options{Publisher: pub}) // fixedNow: the bucket never refills
	body := func(series int) []byte {
		req := &prompb.WriteRequest{}
		for i := range series {
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: lbls("__name__", "x", "i", itoa(i)), Samples: []prompb.Sample{{Value: 1, Timestamp: 1}}})
		}
		return encodeV1(t, req)
	}
	write := func(user, pass string, series int) response {
		return h.prom(t, promRequest{path: RemoteWritePath, body: body(series), user: user, pass: pass})
	}

	requireAnswer(t, write("1", "probe-one-secret", 4), 413, nil, "4 series in one request, the limit is 3")
	requireAnswer(t, write("1", "probe-one-secret", 3), 204, nil, "")
	pub.down.Store(true)
	requireAnswer(t, write("1", "probe-one-secret", 1), 503, nil, "")
	pub.down.Store(false)
	requireAnswer(t, write("1", "probe-one-secret", 1), 204, nil, "") // the refused sample was given back
	resp := write("1", "probe-one-secret", 1)
	requireAnswer(t, resp, 429, map[string]string{"Retry-After": "1"}, `tenant \"acme\" is over its limit of 1 samples/s`)
	requireAnswer(t, write("2", "probe-two-secret", 3), 204, nil, "")
	push := h.prom(t, promRequest{path: "/metrics/job/x", body: []byte("y 1\n"), user: "1", pass: "probe-one-secret"})
	requireAnswer(t, push, 429, nil, "samples/s")

	require.Len(t, pub.published(), 3)
	require.Equal(t, 1.0, testutil.ToFloat64(h.svc.metrics.prom.limited[limitSeries]))
	require.Equal(t, 2.0, testutil.ToFloat64(h.svc.metrics.prom.limited[limitRate]))
}
