package reporter

import (
	"errors"
	"math"
)

// Forecast extends a chart series past the period, with the error the
// same model made when the end of the period was held out.
type Forecast struct {
	// Model is "holt-winters" (additive season) or "holt" (double
	// exponential smoothing, no season).
	Model  string  `json:"model"`
	Alpha  float64 `json:"alpha"`
	Beta   float64 `json:"beta"`
	Gamma  float64 `json:"gamma"`
	Season int     `json:"seasonPoints"`
	// Horizon is how many points ahead the forecast reaches.
	Horizon int `json:"horizonPoints"`
	// Backtest is the model's error on the held-out end of the period.
	Backtest ForecastError `json:"backtest"`
	// Baseline is a straight line's error on the same hold-out.
	Baseline ForecastError `json:"baseline"`
	// End is the forecast at the horizon, with its band.
	End     Num `json:"end"`
	EndLow  Num `json:"endLow"`
	EndHigh Num `json:"endHigh"`

	// Values, Low and High are the forecast points, for the chart.
	Values, Low, High []float64 `json:"-"`
}

// ForecastError is a backtest: the last Holdout points are predicted from
// those before them.
type ForecastError struct {
	Holdout int `json:"holdoutPoints"`
	// MAPE is the mean absolute percentage error (null when an actual
	// value is 0).
	MAPE Num `json:"mape"`
	// MASE is the mean absolute error scaled by the in-sample error of
	// the naive one-step forecast (null for a constant training series).
	MASE Num `json:"mase"`
	// RMSE is the root mean squared error, the band's width.
	RMSE Num `json:"rmse"`
}

// Defined reports whether at least one error figure exists.
func (e ForecastError) Defined() bool {
	return !math.IsNaN(float64(e.MAPE)) || !math.IsNaN(float64(e.MASE))
}

// hwParams are smoothing factors of level, trend and season.
type hwParams struct{ alpha, beta, gamma float64 }

// The grid the smoothing factors are fitted on: small, since every
// chart series of a report is fitted.
var (
	alphaGrid = []float64{0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9}
	betaGrid  = []float64{0.01, 0.05, 0.1, 0.3}
	gammaGrid = []float64{0.05, 0.1, 0.3, 0.5}
)

// HoltWinters runs additive Holt–Winters over y with season length m
// (m < 2: Holt's double exponential smoothing) and returns the sum of
// squared one-step errors after the first season and the next h points.
func HoltWinters(y []float64, m int, alpha, beta, gamma float64, h int) (sse float64, forecast []float64) {
	if m < 2 {
		m = 0
	}
	if len(y) < 2 || (m > 0 && len(y) < 2*m) {
		return math.Inf(1), nil
	}
	season := make([]float64, max(m, 1))
	var level, trend float64
	start := 0
	if m > 0 {
		first, second := mean(y[:m]), mean(y[m:2*m])
		level, trend = first, (second-first)/float64(m)
		for i := range m {
			season[i] = y[i] - first
		}
		start = m
	} else {
		level, trend = y[0], y[1]-y[0]
		start = 1
	}
	for t := start; t < len(y); t++ {
		s := 0.0
		if m > 0 {
			s = season[t%m]
		}
		pred := level + trend + s
		sse += (y[t] - pred) * (y[t] - pred)
		prev := level
		level = alpha*(y[t]-s) + (1-alpha)*(level+trend)
		trend = beta*(level-prev) + (1-beta)*trend
		if m > 0 {
			season[t%m] = gamma*(y[t]-level) + (1-gamma)*s
		}
	}
	forecast = make([]float64, h)
	for k := 1; k <= h; k++ {
		s := 0.0
		if m > 0 {
			s = season[(len(y)+k-1)%m]
		}
		forecast[k-1] = level + float64(k)*trend + s
	}
	return sse, forecast
}

// fitHoltWinters picks the smoothing factors with the least one-step
// error on y.
func fitHoltWinters(y []float64, m int) hwParams {
	best, bestSSE := hwParams{0.3, 0.1, 0.1}, math.Inf(1)
	gammas := gammaGrid
	if m < 2 {
		gammas = []float64{0}
	}
	for _, a := range alphaGrid {
		for _, b := range betaGrid {
			for _, g := range gammas {
				if sse, _ := HoltWinters(y, m, a, b, g, 0); sse < bestSSE {
					best, bestSSE = hwParams{a, b, g}, sse
				}
			}
		}
	}
	return best
}

// Linear fits a least-squares line to y and returns its next h points.
func Linear(y []float64, h int) []float64 {
	n := float64(len(y))
	var sx, sy, sxx, sxy float64
	for i, v := range y {
		x := float64(i)
		sx, sy, sxx, sxy = sx+x, sy+v, sxx+x*x, sxy+x*v
	}
	slope := 0.0
	if d := n*sxx - sx*sx; d != 0 {
		slope = (n*sxy - sx*sy) / d
	}
	icept := (sy - slope*sx) / n
	out := make([]float64, h)
	for k := range h {
		out[k] = icept + slope*float64(len(y)+k)
	}
	return out
}

// Errors compares predictions with actuals; train scales MASE.
func Errors(train, actual, pred []float64) ForecastError {
	e := ForecastError{Holdout: len(actual), MAPE: Num(math.NaN()), MASE: Num(math.NaN())}
	var abs, sq, pct float64
	pctOK := true
	for i, a := range actual {
		d := a - pred[i]
		abs += math.Abs(d)
		sq += d * d
		if a == 0 {
			pctOK = false
		} else {
			pct += math.Abs(d / a)
		}
	}
	n := float64(len(actual))
	e.RMSE = Num(math.Sqrt(sq / n))
	if pctOK {
		e.MAPE = Num(100 * pct / n)
	}
	var scale float64
	for i := 1; i < len(train); i++ {
		scale += math.Abs(train[i] - train[i-1])
	}
	if scale > 0 {
		e.MASE = Num((abs / n) / (scale / float64(len(train)-1)))
	}
	return e
}

// errTooShort: a series too short for a backtest gets no forecast.
var errTooShort = errors.New("too few points for a backtest")

// band is the half width of the forecast band: about 95% of normal
// errors of the backtest's size.
const band = 1.96

// MakeForecast backtests Holt–Winters (season m points; < 2: none) and a
// line on the last h points of y (at most a quarter of y), then forecasts
// h points past y with the factors fitted on all of y.
func MakeForecast(y []float64, m, h int) (*Forecast, error) {
	hold := min(h, len(y)/4)
	if m >= 2 && len(y)-hold < 2*m {
		m = 0 // not two seasons to fit on: no season
	}
	if hold < 1 || len(y)-hold < 4 {
		return nil, errTooShort
	}
	train, test := y[:len(y)-hold], y[len(y)-hold:]
	p := fitHoltWinters(train, m)
	_, pred := HoltWinters(train, m, p.alpha, p.beta, p.gamma, hold)
	f := &Forecast{
		Model: "holt-winters", Season: m, Horizon: h,
		Backtest: Errors(train, test, pred),
		Baseline: Errors(train, test, Linear(train, hold)),
	}
	if m < 2 {
		f.Model, f.Season = "holt", 0
	}
	if !f.Backtest.Defined() {
		return nil, errors.New("backtest error undefined (constant series with zeros)")
	}
	p = fitHoltWinters(y, m)
	f.Alpha, f.Beta, f.Gamma = p.alpha, p.beta, p.gamma
	_, f.Values = HoltWinters(y, m, p.alpha, p.beta, p.gamma, h)
	w := band * float64(f.Backtest.RMSE)
	f.Low, f.High = make([]float64, h), make([]float64, h)
	for i, v := range f.Values {
		f.Low[i], f.High[i] = v-w, v+w
	}
	f.End, f.EndLow, f.EndHigh = Num(f.Values[h-1]), Num(f.Low[h-1]), Num(f.High[h-1])
	return f, nil
}

func mean(y []float64) float64 {
	var s float64
	for _, v := range y {
		s += v
	}
	return s / float64(len(y))
}
