package reporter

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// seasonal is 30 days of hourly points: a level with a trend, a daily
// cycle and a little deterministic noise.
func seasonal(n int) []float64 {
	r := rand.New(rand.NewPCG(1, 2))
	y := make([]float64, n)
	for i := range y {
		y[i] = 100 + 0.05*float64(i) + 20*math.Sin(2*math.Pi*float64(i)/24) + r.NormFloat64()
	}
	return y
}

func TestLinear(t *testing.T) {
	tests := []struct {
		name string
		y    []float64
		h    int
		want []float64
	}{
		{name: "line", y: []float64{1, 3, 5, 7}, h: 2, want: []float64{9, 11}},
		{name: "constant", y: []float64{4, 4, 4}, h: 1, want: []float64{4}},
		{name: "least squares", y: []float64{0, 2, 0, 2}, h: 1, want: []float64{2}}, // slope 0.4, intercept 0.4
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Linear(tc.y, tc.h)
			require.InDeltaSlice(t, tc.want, got, 1e-9)
		})
	}
}

func TestHoltWintersKnownSeries(t *testing.T) {
	tests := []struct {
		name string
		y    []float64
		m    int
		h    int
		want []float64
	}{
		// A line is followed exactly by Holt's method (level and trend
		// start on it and every error is 0).
		{name: "holt on a line", y: []float64{2, 4, 6, 8, 10}, m: 0, h: 3, want: []float64{12, 14, 16}},
		// A pure repeating season with no trend repeats.
		{name: "holt-winters on a pure season", y: []float64{1, 5, 3, 1, 5, 3, 1, 5, 3}, m: 3, h: 4, want: []float64{1, 5, 3, 1}},
		{name: "constant", y: []float64{7, 7, 7, 7, 7, 7}, m: 2, h: 2, want: []float64{7, 7}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sse, got := HoltWinters(tc.y, tc.m, 0.5, 0.3, 0.2, tc.h)
			require.InDelta(t, 0, sse, 1e-9)
			require.InDeltaSlice(t, tc.want, got, 1e-9)
		})
	}
}

func TestHoltWintersTooShort(t *testing.T) {
	sse, f := HoltWinters([]float64{1, 2, 3}, 2, 0.5, 0.5, 0.5, 2)
	require.True(t, math.IsInf(sse, 1))
	require.Nil(t, f)
}

func TestForecastBeatsLinearOnASeasonalSeries(t *testing.T) {
	y := seasonal(30 * 24)
	f, err := MakeForecast(y, 24, 48)
	require.NoError(t, err)
	require.Equal(t, "holt-winters", f.Model)
	require.Equal(t, 48, f.Backtest.Holdout)
	require.Less(t, float64(f.Backtest.MAPE), float64(f.Baseline.MAPE)/3, "holt-winters %v, linear %v", f.Backtest.MAPE, f.Baseline.MAPE)
	require.Less(t, float64(f.Backtest.MASE), float64(f.Baseline.MASE))
	require.Len(t, f.Values, 48)

	// The reported error, recomputed here from the hold-out: fit on all
	// but the last 48 points, predict them, compare.
	train, test := y[:len(y)-48], y[len(y)-48:]
	p := fitHoltWinters(train, 24)
	_, pred := HoltWinters(train, 24, p.alpha, p.beta, p.gamma, 48)
	var pct, abs, naive, sq float64
	for i := range test {
		pct += math.Abs((test[i] - pred[i]) / test[i])
		abs += math.Abs(test[i] - pred[i])
		sq += (test[i] - pred[i]) * (test[i] - pred[i])
	}
	for i := 1; i < len(train); i++ {
		naive += math.Abs(train[i] - train[i-1])
	}
	require.InDelta(t, 100*pct/48, float64(f.Backtest.MAPE), 1e-9)
	require.InDelta(t, (abs/48)/(naive/float64(len(train)-1)), float64(f.Backtest.MASE), 1e-9)
	rmse := math.Sqrt(sq / 48)
	require.InDelta(t, rmse, float64(f.Backtest.RMSE), 1e-9)
	// The band is the backtest's error either side.
	for i := range f.Values {
		require.InDelta(t, band*rmse, f.High[i]-f.Values[i], 1e-9)
		require.InDelta(t, band*rmse, f.Values[i]-f.Low[i], 1e-9)
	}
	// The forecast continues the cycle: a day ahead is near the noiseless
	// series there.
	for _, k := range []int{5, 11, 23} {
		i := float64(len(y) + k)
		require.InDelta(t, 100+0.05*i+20*math.Sin(2*math.Pi*i/24), f.Values[k], 3, "point %d", k)
	}
}

func TestMakeForecastCases(t *testing.T) {
	tests := []struct {
		name      string
		y         []float64
		m, h      int
		wantModel string
		wantErr   string
	}{
		{name: "too short", y: []float64{1, 2, 3}, m: 0, h: 1, wantErr: "too few points"},
		{name: "season longer than half the training falls back to holt", y: seasonal(40), m: 24, h: 4, wantModel: "holt"},
		{name: "zeros and constant: no error defined", y: make([]float64, 50), m: 0, h: 5, wantErr: "backtest error undefined"},
		{name: "holt without a season", y: seasonal(100), m: 0, h: 10, wantModel: "holt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := MakeForecast(tc.y, tc.m, tc.h)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantModel, f.Model)
			require.True(t, f.Backtest.Defined())
		})
	}
}

func TestErrorsUndefined(t *testing.T) {
	e := Errors([]float64{1, 1, 1}, []float64{0, 2}, []float64{1, 1})
	require.True(t, math.IsNaN(float64(e.MAPE)), "an actual 0 has no percentage error")
	require.True(t, math.IsNaN(float64(e.MASE)), "a constant training series has no naive error")
	require.InDelta(t, 1, float64(e.RMSE), 1e-12)
	require.False(t, e.Defined())
}
