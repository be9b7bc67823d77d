package service

import (
	"flag"
	"io"
	"log/slog"
	"runtime/debug"
	"testing"

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
