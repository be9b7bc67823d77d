package reporter

import (
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func TestChartStep(t *testing.T) {
	tests := []struct {
		name   string
		period time.Duration
		points int
		floor  time.Duration
		want   time.Duration
	}{
		{name: "day in 288 points", period: 24 * time.Hour, points: 288, floor: time.Minute, want: 5 * time.Minute},
		{name: "30 days in 720 points", period: 30 * 24 * time.Hour, points: 720, floor: time.Minute, want: time.Hour},
		{name: "rounded up to whole seconds", period: 25 * time.Hour, points: 7, floor: time.Second, want: 12858 * time.Second},
		{name: "no finer than the floor", period: time.Hour, points: 720, floor: time.Minute, want: time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, chartStep(tc.period, tc.points, tc.floor))
		})
	}
}

func TestRegular(t *testing.T) {
	start := day
	at := func(m int) model.Time {
		return model.TimeFromUnixNano(start.Add(time.Duration(m) * time.Minute).UnixNano())
	}
	tests := []struct {
		name        string
		samples     []model.SamplePair
		want        []float64
		wantMissing int
	}{
		{name: "full", samples: []model.SamplePair{{Timestamp: at(0), Value: 1}, {Timestamp: at(1), Value: 2}, {Timestamp: at(2), Value: 3}, {Timestamp: at(3), Value: 4}}, want: []float64{1, 2, 3, 4}},
		{name: "gap carries the previous value", samples: []model.SamplePair{{Timestamp: at(0), Value: 1}, {Timestamp: at(3), Value: 4}}, want: []float64{1, 1, 1, 4}, wantMissing: 2},
		{name: "leading gap takes the first value", samples: []model.SamplePair{{Timestamp: at(2), Value: 3}, {Timestamp: at(3), Value: 4}}, want: []float64{3, 3, 3, 4}, wantMissing: 2},
		{name: "outside the period ignored", samples: []model.SamplePair{{Timestamp: at(-1), Value: 9}, {Timestamp: at(0), Value: 1}, {Timestamp: at(1), Value: 2}, {Timestamp: at(2), Value: 3}, {Timestamp: at(3), Value: 4}, {Timestamp: at(4), Value: 9}}, want: []float64{1, 2, 3, 4}},
		{name: "none", wantMissing: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			y, missing := regular(tc.samples, start, start.Add(4*time.Minute), time.Minute)
			require.Equal(t, tc.want, y)
			require.Equal(t, tc.wantMissing, missing)
		})
	}
}

func TestPromDuration(t *testing.T) {
	require.Equal(t, "2592000s", promDuration(30*24*time.Hour))
	require.Equal(t, "1500ms", promDuration(1500*time.Millisecond))
}

func TestAlertsQuery(t *testing.T) {
	q, err := alertsQuery(`{severity="critical"}`, time.Minute)
	require.NoError(t, err)
	require.Equal(t, `count_over_time(ALERTS{alertstate="firing",severity="critical"}[60s])`, q)
	_, err = alertsQuery(`sum(x)`, time.Minute)
	require.Error(t, err)
}
