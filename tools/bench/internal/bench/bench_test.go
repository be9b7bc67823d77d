package bench

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRunInProcess is `make bench-ingest` in miniature: tmaflow and the
// floor at two levels, then half of the best rate.
func TestRunInProcess(t *testing.T) {
	var out strings.Builder
	prof := filepath.Join(t.TempDir(), "cpu.prof")
	rep, err := Run(context.Background(), Config{
		Concurrency: []int{1, 4}, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond,
		Floor: true, HalfRate: true, DataItems: 20, ObsPerItem: 1, Resources: 4, CPUProfile: prof,
	}, &out)
	require.NoError(t, err, out.String())

	require.Len(t, rep.Rows, 4)
	for i, want := range []struct {
		target string
		conc   int
	}{{"tmaflow", 1}, {"floor", 1}, {"tmaflow", 4}, {"floor", 4}} {
		row := rep.Rows[i]
		require.Equal(t, want.target, row.Target)
		require.Equal(t, want.conc, row.Concurrency)
		require.Positive(t, row.Result.Requests, "%s at %d: %v", row.Target, row.Concurrency, row.Result.FirstError)
		require.Zero(t, row.Result.Failures, "%v", row.Result.FirstError)
		require.Equal(t, 20*row.Result.Requests, row.Result.Observations)
	}
	require.NotNil(t, rep.Half)
	best := rep.best()
	require.InDelta(t, best.Result.RequestsPerSecond()/2, rep.Half.Rate, 1e-9)
	require.Equal(t, best.Concurrency, rep.Half.Concurrency)
	require.Positive(t, rep.Half.Result.Requests)

	for _, s := range []string{"tmaflow in-process", "req/s", "obs/s", "p99", "ratio", "half of the best rate"} {
		require.Contains(t, out.String(), s)
	}
	st, err := os.Stat(prof)
	require.NoError(t, err)
	require.Positive(t, st.Size())
}

func TestRunRejectsBadTarget(t *testing.T) {
	var out strings.Builder
	_, err := Run(context.Background(), Config{
		URL: "http://127.0.0.1:1/monitor", Concurrency: []int{1}, Duration: 100 * time.Millisecond,
		DataItems: 1, ObsPerItem: 1, Resources: 1,
	}, &out)
	require.ErrorContains(t, err, "first request")
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    []int
		wantErr string
	}{
		{name: "default sweep", want: []int{16, 64, 256}},
		{name: "own sweep", args: []string{"-concurrency=1, 8,32"}, want: []int{1, 8, 32}},
		{name: "zero level", args: []string{"-concurrency=0"}, wantErr: "positive integer"},
		{name: "not a number", args: []string{"-concurrency=8,x"}, wantErr: "positive integer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("tmaload", flag.ContinueOnError)
			fs.SetOutput(&strings.Builder{})
			var cfg Config
			cfg.RegisterFlags(fs)
			err := fs.Parse(tc.args)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.NoError(t, cfg.Validate())
			require.Equal(t, tc.want, cfg.Concurrency)
		})
	}
}
