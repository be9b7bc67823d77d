package budget

import (
	"math"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeMachine is memory and disk a test sets.
type fakeMachine struct {
	live, limit   int64
	used, free    int64
	relieved      int
	freedByRelief int64 // bytes one retention pass frees
}

func (m *fakeMachine) options() Options {
	return Options{
		Dir:       "/data",
		Relieve:   func() { m.relieved++; m.used -= m.freedByRelief; m.free += m.freedByRelief },
		dirSize:   func(string) (int64, error) { return m.used, nil },
		freeBytes: func(string) (int64, error) { return m.free, nil },
		liveHeap:  func() uint64 { return uint64(m.live) },
		memLimit:  func() int64 { return m.limit },
	}
}

func TestGuard(t *testing.T) {
	const mib = 1 << 20
	cfg := Config{DiskMiB: 1000, MinFreeMiB: 100, MemoryPercent: 90, CheckInterval: time.Second}
	for _, tc := range []struct {
		name         string
		m            fakeMachine
		cfg          func(*Config)
		wantStatus   int // 0: admitted
		wantReason   string
		wantRelieved int
	}{
		{name: "within every budget", m: fakeMachine{live: 100 * mib, limit: 1000 * mib, used: 500 * mib, free: 10000 * mib}},
		{name: "no memory limit, no memory budget", m: fakeMachine{live: 5000 * mib, limit: math.MaxInt64, used: 0, free: 10000 * mib}},
		{name: "memory near the limit: 429 and a retention pass", m: fakeMachine{live: 950 * mib, limit: 1000 * mib, free: 10000 * mib},
			wantStatus: http.StatusTooManyRequests, wantReason: "memory budget: live heap 950 MiB is at or above 90% of the 1000 MiB limit", wantRelieved: 1},
		{name: "data dir near its cap: retention first", m: fakeMachine{limit: math.MaxInt64, used: 950 * mib, free: 10000 * mib}, wantRelieved: 1},
		{name: "data dir at its cap: 503", m: fakeMachine{limit: math.MaxInt64, used: 1000 * mib, free: 10000 * mib},
			wantStatus: http.StatusServiceUnavailable, wantReason: "holds 1000 MiB of its 1000 MiB cap", wantRelieved: 1},
		{name: "retention frees enough: admitted", m: fakeMachine{limit: math.MaxInt64, used: 1000 * mib, free: 10000 * mib, freedByRelief: 300 * mib}, wantRelieved: 1},
		{name: "file system nearly full: 503", m: fakeMachine{limit: math.MaxInt64, used: 10 * mib, free: 50 * mib},
			wantStatus: http.StatusServiceUnavailable, wantReason: "50 MiB free on the data dir's file system, below the 100 MiB floor", wantRelieved: 1},
		{name: "free space under twice the floor: retention only", m: fakeMachine{limit: math.MaxInt64, used: 10 * mib, free: 150 * mib}, wantRelieved: 1},
		{name: "no cap: the dir is not measured", cfg: func(c *Config) { c.DiskMiB = 0 }, m: fakeMachine{limit: math.MaxInt64, used: 1 << 50, free: 10000 * mib}},
		{name: "disk wins over memory", m: fakeMachine{live: 950 * mib, limit: 1000 * mib, used: 1000 * mib, free: 10000 * mib},
			wantStatus: http.StatusServiceUnavailable, wantReason: "disk budget", wantRelieved: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg
			if tc.cfg != nil {
				tc.cfg(&c)
			}
			g, err := New(c, tc.m.options())
			require.NoError(t, err)
			g.Check()
			require.Equal(t, tc.wantRelieved, tc.m.relieved)
			err = g.Admit()
			if tc.wantStatus == 0 {
				require.NoError(t, err)
				return
			}
			var r *Refusal
			require.ErrorAs(t, err, &r)
			require.Equal(t, tc.wantStatus, r.Status)
			require.Contains(t, r.Reason, tc.wantReason)
		})
	}
}

func TestGuardRecovers(t *testing.T) {
	const mib = 1 << 20
	m := &fakeMachine{limit: math.MaxInt64, used: 10 * mib, free: 50 * mib}
	g, err := New(Config{MinFreeMiB: 100, MemoryPercent: 90, CheckInterval: time.Second}, m.options())
	require.NoError(t, err)
	g.Check()
	require.Error(t, g.Admit())
	m.free = 5000 * mib // an operator freed space
	g.Check()
	require.NoError(t, g.Admit())
}

func TestDirSize(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "kafka", "topic-0"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kafka", "topic-0", "seg"), make([]byte, 3000), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "wal"), make([]byte, 1000), 0o644))
	n, err := dirSize(dir)
	require.NoError(t, err)
	// Allocated blocks: at least the bytes written, at most a block more
	// per file.
	require.GreaterOrEqual(t, n, int64(4000))
	require.LessOrEqual(t, n, int64(4000+2*64<<10))
	free, err := freeBytes(dir)
	require.NoError(t, err)
	require.Positive(t, free)
}

func TestExecuteChecksUntilInterrupted(t *testing.T) {
	m := &fakeMachine{limit: math.MaxInt64, free: 1 << 40}
	g, err := New(Config{MinFreeMiB: 1, MemoryPercent: 90, CheckInterval: 10 * time.Millisecond}, m.options())
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- g.Execute() }()
	require.Eventually(t, func() bool { return g.Admit() == nil }, time.Second, 10*time.Millisecond)
	g.Interrupt(nil)
	g.Interrupt(nil)
	require.NoError(t, <-done)
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg     Config
		wantErr string
	}{
		{Config{MemoryPercent: 90, CheckInterval: time.Second}, ""},
		{Config{DiskMiB: -1, MemoryPercent: 90, CheckInterval: time.Second}, "budget.disk-mib -1"},
		{Config{MinFreeMiB: -1, MemoryPercent: 90, CheckInterval: time.Second}, "budget.min-free-mib -1"},
		{Config{MemoryPercent: 0, CheckInterval: time.Second}, "budget.memory-percent 0"},
		{Config{MemoryPercent: 90}, "budget.check-interval 0s"},
	} {
		err := tc.cfg.Validate()
		if tc.wantErr == "" {
			require.NoError(t, err)
			continue
		}
		require.ErrorContains(t, err, tc.wantErr)
	}
}
