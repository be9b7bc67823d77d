package service

import (
	"flag"
	"io"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

func TestRuntimeConfig(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before); debug.SetMemoryLimit(-1) })
	parse := func(t *testing.T, args ...string) *RuntimeConfig {
		var c RuntimeConfig
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		c.RegisterFlags(fs, 400)
		require.NoError(t, fs.Parse(args))
		return &c
	}
	for _, tc := range []struct {
		name   string
		args   []string
		gogc   string // GOGC in the environment
		wantGC int
	}{
		{"service default", nil, "", 400},
		{"flag", []string{"-runtime.gc-percent=150"}, "", 150},
		{"GOGC wins over the default", nil, "100", 100},
		{"the flag wins over GOGC", []string{"-runtime.gc-percent=250"}, "100", 250},
	} {
		t.Run(tc.name, func(t *testing.T) {
			debug.SetGCPercent(100) // what the runtime took from GOGC
			if tc.gogc != "" {
				t.Setenv("GOGC", tc.gogc)
			}
			c := parse(t, tc.args...)
			require.NoError(t, c.Validate())
			c.Apply(logger)
			require.Equal(t, tc.wantGC, debug.SetGCPercent(100))
		})
	}
	t.Run("memory limit", func(t *testing.T) {
		c := parse(t, "-runtime.memory-limit-mib=512")
		c.Apply(logger)
		require.Equal(t, int64(512<<20), debug.SetMemoryLimit(-1))
	})
	t.Run("default memory limit, GOMEMLIMIT wins over it", func(t *testing.T) {
		var c RuntimeConfig
		c.DefaultMemoryLimitMiB = 256
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		c.RegisterFlags(fs, 400)
		require.NoError(t, fs.Parse(nil))
		c.Apply(logger)
		require.Equal(t, int64(256<<20), debug.SetMemoryLimit(-1))

		debug.SetMemoryLimit(300 << 20) // what the runtime took from GOMEMLIMIT
		t.Setenv("GOMEMLIMIT", "300MiB")
		c.Apply(logger)
		require.Equal(t, int64(300<<20), debug.SetMemoryLimit(-1))
	})
	t.Run("invalid", func(t *testing.T) {
		require.ErrorContains(t, parse(t, "-runtime.gc-percent=-2").Validate(), "runtime.gc-percent")
		require.ErrorContains(t, parse(t, "-runtime.memory-limit-mib=-1").Validate(), "runtime.memory-limit-mib")
	})
}

func TestGCTuner(t *testing.T) {
	t.Run("percent", func(t *testing.T) {
		tu := newGCTuner(400, 64<<20, time.Millisecond, nil, nil, nil, nil)
		for _, tc := range []struct {
			live uint64
			want int
		}{
			{0, 400},
			{8 << 20, 400},  // 800% capped at the flag
			{16 << 20, 400}, // exactly 400%
			{32 << 20, 200}, // 64 MiB of 32
			{64 << 20, 100}, // the headroom is the heap
			{128 << 20, 50}, // half the heap
			{256 << 20, 25}, // a quarter
			{512 << 20, 25}, // never below a quarter
		} {
			require.Equal(t, tc.want, tu.Percent(tc.live), "live %d MiB", tc.live>>20)
		}
	})
	t.Run("sets after each collection", func(t *testing.T) {
		var mu sync.Mutex
		cycles, live := uint64(0), uint64(0)
		var set []int
		reg := prometheus.NewPedanticRegistry()
		tu := newGCTuner(400, 64<<20, time.Millisecond,
			func() (uint64, uint64) { mu.Lock(); defer mu.Unlock(); return cycles, live },
			func(p int) int { mu.Lock(); defer mu.Unlock(); set = append(set, p); return 0 }, nil, reg)
		done := make(chan error)
		go func() { done <- tu.Execute() }()
		collect := func(l uint64) {
			mu.Lock()
			cycles++
			live = l
			mu.Unlock()
		}
		setSoFar := func() []int { mu.Lock(); defer mu.Unlock(); return slices.Clone(set) }
		collect(128 << 20)
		require.Eventually(t, func() bool { return slices.Equal(setSoFar(), []int{50}) }, 5*time.Second, time.Millisecond)
		collect(127 << 20) // same percent: not set again
		collect(20 << 20)
		require.Eventually(t, func() bool { return slices.Equal(setSoFar(), []int{50, 320}) }, 5*time.Second, time.Millisecond)
		require.Equal(t, 320.0, testutil.ToFloat64(tu.percent))
		tu.Interrupt(nil)
		require.NoError(t, <-done)
	})
	t.Run("configuration", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			args []string
			gogc string
			want bool
		}{
			{"default headroom", nil, "", true},
			{"off", []string{"-runtime.gc-headroom-mib=0"}, "", false},
			{"percent at Go's default", []string{"-runtime.gc-percent=100"}, "", true},
			{"percent at the tuner's floor", []string{"-runtime.gc-percent=25"}, "", false},
			{"collector off", []string{"-runtime.gc-percent=-1"}, "", false},
			{"GOGC from the environment", nil, "200", false},
			{"the flag wins over GOGC", []string{"-runtime.gc-percent=300"}, "200", true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if tc.gogc != "" {
					t.Setenv("GOGC", tc.gogc)
				}
				c := RuntimeConfig{DefaultGCHeadroomMiB: 64}
				fs := flag.NewFlagSet("t", flag.ContinueOnError)
				c.RegisterFlags(fs, 400)
				require.NoError(t, fs.Parse(tc.args))
				require.NoError(t, c.Validate())
				require.Equal(t, tc.want, c.Tuner(nil, prometheus.NewRegistry()) != nil)
			})
		}
	})
}
