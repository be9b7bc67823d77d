package service

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCatchUpWaitsForTheLag(t *testing.T) {
	cfg := CatchUpConfig{MaxLag: 10, CheckInterval: time.Millisecond}
	tests := []struct {
		name     string
		lags     []int64 // one per check; the last repeats
		known    bool
		err      error
		caughtUp bool
		reason   string
	}{
		{name: "behind then caught up", lags: []int64{500, 50, 10}, known: true, caughtUp: true},
		{name: "never known", lags: []int64{0}, caughtUp: true},
		{name: "stays behind", lags: []int64{11}, known: true, reason: "catching up: 11 records behind topic-x"},
		{name: "lag unknown", lags: []int64{0}, known: true, err: errors.New("no broker"), reason: "consumer lag unknown: no broker"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var (
				calls    int
				observed []int64
			)
			p := NewProber()
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			lag, ok := CatchUp{
				Config: cfg,
				Topics: "topic-x",
				Prober: p,
				Lag: func(context.Context) (int64, bool, error) {
					l := tc.lags[min(calls, len(tc.lags)-1)]
					calls++
					return l, tc.known, tc.err
				},
				Observe: func(l int64) { observed = append(observed, l) },
			}.Wait(ctx)
			require.Equal(t, tc.caughtUp, ok)
			require.False(t, p.IsReady(), "Wait leaves readiness to the caller")
			if tc.caughtUp {
				require.Equal(t, tc.lags[len(tc.lags)-1], lag)
				if tc.known {
					require.Equal(t, tc.lags, observed)
				}
				return
			}
			rec := httptest.NewRecorder()
			p.ReadyHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/-/ready", nil))
			require.Contains(t, rec.Body.String(), tc.reason)
		})
	}
}

func TestCatchUpSettles(t *testing.T) {
	now := time.Unix(0, 0)
	p := NewProber()
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, ok := CatchUp{
		Config: CatchUpConfig{Settle: time.Hour, CheckInterval: time.Millisecond},
		Prober: p,
		Now:    func() time.Time { return now },
		Lag:    func(context.Context) (int64, bool, error) { return 0, false, nil },
	}.Wait(short)
	require.False(t, ok, "an unknown lag is not caught up within the settle time")
	rec := httptest.NewRecorder()
	p.ReadyHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/-/ready", nil))
	require.Contains(t, rec.Body.String(), "starting: consumer settling")

	ctx, cancelLong := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelLong()
	_, ok = CatchUp{
		Config: CatchUpConfig{MaxLag: 5, Settle: time.Hour, CheckInterval: time.Millisecond},
		Prober: p,
		Now:    func() time.Time { return now },
		Lag:    func(context.Context) (int64, bool, error) { return 3, true, nil },
	}.Wait(ctx)
	require.True(t, ok, "a known lag within the bound needs no settling")
}

func TestCatchUpConfigValidate(t *testing.T) {
	require.NoError(t, CatchUpConfig{CheckInterval: time.Second}.Validate())
	err := CatchUpConfig{MaxLag: -1, Settle: -1}.Validate()
	require.ErrorContains(t, err, "ready.max-lag must be >= 0")
	require.ErrorContains(t, err, "ready.settle must be >= 0")
	require.ErrorContains(t, err, "ready.check-interval must be > 0")
}

func TestSleep(t *testing.T) {
	require.True(t, Sleep(context.Background(), time.Millisecond))
	require.True(t, Sleep(context.Background(), 0))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.False(t, Sleep(ctx, 0))
	require.False(t, Sleep(ctx, time.Hour), "an ended context cuts the wait short")
}
