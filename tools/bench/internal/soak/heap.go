package soak

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// The Go heap after GC is read from tmaflow's /debug/pprof/heap?gc=1&debug=1:
// gc=1 runs a full collection first, and the text profile ends with the
// runtime's MemStats read right after it. Its HeapAlloc is then the live
// heap (plus what was allocated during that collection and the writing of
// the profile: a few MB at most), exact, not a sampled estimate. The
// go_memstats_heap_* metrics of /metrics are read at any point of the GC
// cycle (up to GOGC% of garbage more), and go_gc_heap_live_bytes is not
// exposed by the services' Go collector.

// HeapAfterGC forces a GC in the process serving pprof at debugAddr and
// returns its HeapAlloc right after.
func HeapAfterGC(ctx context.Context, client *http.Client, debugAddr string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+debugAddr+"/debug/pprof/heap?gc=1&debug=1", nil)
	if err != nil {
		return 0, fmt.Errorf("heap profile: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("heap profile: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("heap profile: status %d", resp.StatusCode)
	}
	n, err := ParseMemStat(resp.Body, "HeapAlloc")
	_, _ = io.Copy(io.Discard, resp.Body) // the connection is reused
	return n, err
}

// ParseMemStat reads "# <name> = <n>" of the MemStats block at the end of
// a debug=1 heap profile.
func ParseMemStat(r io.Reader, name string) (int64, error) {
	prefix := "# " + name + " = "
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(line[len(prefix):]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("heap profile: %s: %w", name, err)
		}
		return n, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("heap profile: %w", err)
	}
	return 0, errors.New("heap profile: no " + name + " (not a debug=1 heap profile?)")
}
