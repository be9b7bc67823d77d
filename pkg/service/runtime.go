package service

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
)

// RuntimeConfig tunes the Go garbage collector. With Go's default
// GOGC=100 the small heap of a monitor, labeler or ruler is collected
// several times a second, and in the all-in-one the collector took about
// 15% of the CPU (6% at 400%). A higher percentage trades memory for
// fewer collections; the memory limit bounds what that costs where the
// live heap is large (a persister's TSDB head).
type RuntimeConfig struct {
	GCPercent      int
	MemoryLimitMiB int64
	GCHeadroomMiB  int64
	// DefaultMemoryLimitMiB, set before RegisterFlags, is the default of
	// -runtime.memory-limit-mib (0: none).
	DefaultMemoryLimitMiB int64
	// DefaultGCHeadroomMiB, set before RegisterFlags, is the default of
	// -runtime.gc-headroom-mib (0: no tuner).
	DefaultGCHeadroomMiB int64

	defaultGCPercent int
}

// RegisterFlags registers the runtime flags with the service's default
// GC percentage.
func (c *RuntimeConfig) RegisterFlags(f FlagSet, defaultGCPercent int) {
	c.defaultGCPercent = defaultGCPercent
	f.IntVar(&c.GCPercent, "runtime.gc-percent", defaultGCPercent, "Heap growth between garbage collections, in percent (Go's GOGC; -1 turns collection off but for the memory limit). The GOGC environment variable wins over the default, this flag over both.")
	f.Int64Var(&c.GCHeadroomMiB, "runtime.gc-headroom-mib", c.DefaultGCHeadroomMiB, "Most the heap grows past the live heap between collections, in MiB: after each collection the GC percentage becomes this over the live heap, between 25 and runtime.gc-percent, so a small heap keeps the high percentage and a large one is not let grow to several times itself. 0: runtime.gc-percent as is. Off when GOGC is set in the environment and runtime.gc-percent is not.")
	f.Int64Var(&c.MemoryLimitMiB, "runtime.memory-limit-mib", c.DefaultMemoryLimitMiB, "Soft memory limit of the Go runtime in MiB (GOMEMLIMIT): collections run as often as needed to stay under it, whatever runtime.gc-percent says; the memory budget refuses ingest near it. 0: none, or GOMEMLIMIT from the environment, which wins over the default.")
}

// Validate checks the values.
func (c *RuntimeConfig) Validate() error {
	if c.GCPercent < -1 {
		return fmt.Errorf("runtime.gc-percent must be >= -1, got %d", c.GCPercent)
	}
	if c.GCHeadroomMiB < 0 {
		return fmt.Errorf("runtime.gc-headroom-mib must be >= 0, got %d", c.GCHeadroomMiB)
	}
	if c.MemoryLimitMiB < 0 {
		return fmt.Errorf("runtime.memory-limit-mib must be >= 0, got %d", c.MemoryLimitMiB)
	}
	return nil
}

// Apply sets the collector of this process. GOGC in the environment,
// which the runtime read at start, stays when the flag has its default.
func (c *RuntimeConfig) Apply(logger *slog.Logger) {
	if _, fromEnv := os.LookupEnv("GOGC"); !fromEnv || c.GCPercent != c.defaultGCPercent {
		debug.SetGCPercent(c.GCPercent)
	}
	if _, fromEnv := os.LookupEnv("GOMEMLIMIT"); c.MemoryLimitMiB > 0 && (!fromEnv || c.MemoryLimitMiB != c.DefaultMemoryLimitMiB) {
		debug.SetMemoryLimit(c.MemoryLimitMiB << 20)
	}
	logger.Debug("go runtime", "gc_percent_flag", c.GCPercent, "memory_limit_bytes", debug.SetMemoryLimit(-1))
}
