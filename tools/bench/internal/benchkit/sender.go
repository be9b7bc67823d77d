package benchkit

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tmaflow/tmaflow/pkg/service"
	"github.com/tmaflow/tmaflow/tools/bench/internal/loadgen"
)

// SendConfig is one run of TMA messages against the monitor.
type SendConfig struct {
	URL            string
	User, Password string
	ProbeID        int64
	Resources      []int64
	DataItems      int
	// Batch messages go in one POST (a JSON array when > 1).
	Batch       int
	Concurrency int
	// Rate in messages/s; 0 sends as fast as the answers come (closed
	// loop).
	Rate float64
	// Value is each observation's value; nil: SampleValue.
	Value ValueFunc
	// Observe, when set, is told every answered or failed request: its
	// latency, from its slot of the schedule with a rate (a late request
	// counts its wait, so a stalled monitor shows as latency), else from
	// its start; its status, 0 when no answer came. Workers call it
	// concurrently.
	Observe func(latency time.Duration, status int)
}

// SendStats counts what the monitor answered; safe for concurrent use.
type SendStats struct {
	OK, Failed atomic.Int64
	mu         sync.Mutex
	firstErr   error
}

// Fail counts a failed request and keeps the first error.
func (s *SendStats) Fail(err error) {
	s.Failed.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.firstErr == nil {
		s.firstErr = err
	}
}

// Err is the first failure, nil if none.
func (s *SendStats) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstErr
}

// ResourceClock hands out strictly increasing millisecond timestamps per
// resource that follow the wall clock: the TSDB (and Prometheus) store
// exactly one sample per series and timestamp, so a benchmark repeating
// timestamps would measure refusals, not storage.
type ResourceClock struct {
	last []int64
}

// NewResourceClock is a clock of n resources.
func NewResourceClock(n int) *ResourceClock { return &ResourceClock{last: make([]int64, n)} }

// Next is resource i's next timestamp at now.
func (c *ResourceClock) Next(i int, now time.Time) int64 {
	ts := max(now.UnixMilli(), c.last[i]+1)
	c.last[i] = ts
	return ts
}

// Send posts messages until ctx ends. Worker w owns the resources at
// index w, w+C, …, so each resource's messages leave one at a time and in
// timestamp order, as a probe sends them. With a rate each worker keeps
// its own schedule and sends late messages at once (open loop: a slow
// monitor is not given slack by fewer sends).
func Send(ctx context.Context, cfg SendConfig, st *SendStats) {
	runWorkers(cfg.Resources, cfg.Concurrency, max(cfg.Batch, 1), cfg.Rate,
		func(client loadgen.Doer, own []int64, start time.Time, interval time.Duration) {
			sendLoop(ctx, client, cfg, own, start, interval, st)
		})
}

// runWorkers runs loop in min(workers, len(items)) goroutines, each with
// its hand of items and its own connection. With a rate (units/s, perSlot
// units per request) each worker gets a slot every interval.
func runWorkers[T any](items []T, workers, perSlot int, rate float64, loop func(client loadgen.Doer, own []T, start time.Time, interval time.Duration)) {
	n := min(workers, len(items))
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(n*perSlot) / rate * float64(time.Second))
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, own := range Deal(items, n) {
		wg.Go(func() {
			conn := &loadgen.Conn{Timeout: 30 * time.Second}
			defer func() { _ = conn.Close() }() // the load is over; its errors are counted
			loop(conn, own, start, interval)
		})
	}
	wg.Wait()
}

// Deal splits items into n hands: hand w holds items w, w+n, w+2n, …
func Deal[T any](items []T, n int) [][]T {
	hands := make([][]T, n)
	for i, it := range items {
		hands[i%n] = append(hands[i%n], it)
	}
	return hands
}

func sendLoop(ctx context.Context, client loadgen.Doer, cfg SendConfig, own []int64, start time.Time, interval time.Duration, st *SendStats) {
	clock := NewResourceClock(len(own))
	var buf []byte
	for k := int64(0); ctx.Err() == nil; k++ {
		if !awaitSlot(ctx, start, k, interval) {
			return
		}
		began := time.Now()
		if interval > 0 {
			began = start.Add(time.Duration(k) * interval)
		}
		batch := max(cfg.Batch, 1)
		buf = buf[:0]
		if batch > 1 {
			buf = append(buf, '[')
		}
		now := time.Now()
		for m := range batch {
			if m > 0 {
				buf = append(buf, ',')
			}
			seq := k*int64(batch) + int64(m)
			i := int(seq % int64(len(own)))
			buf = AppendMessage(buf, cfg.ProbeID, own[i], seq, clock.Next(i, now), cfg.DataItems, cfg.Value)
		}
		if batch > 1 {
			buf = append(buf, ']')
		}
		status, err := Post(ctx, client, cfg, buf)
		if ctx.Err() != nil {
			return
		}
		if cfg.Observe != nil {
			cfg.Observe(time.Since(began), status)
		}
		switch {
		case err != nil:
			st.Fail(err)
		case status != http.StatusOK:
			st.Fail(fmt.Errorf("monitor answered %d", status))
		default:
			st.OK.Add(int64(batch))
		}
	}
}

// awaitSlot waits for slot k of an open-loop schedule (none when
// interval is 0); false when ctx ended.
func awaitSlot(ctx context.Context, start time.Time, k int64, interval time.Duration) bool {
	if interval <= 0 {
		return ctx.Err() == nil
	}
	return service.Sleep(ctx, time.Until(start.Add(time.Duration(k)*interval)))
}

// AppendMessage appends a TMA message of resource with dataItems data
// items of one observation each at tsMs (milliseconds, as Java probes
// send). Every fifth data item is an event, as in the ingest benchmark, so
// the labeler maps both kinds; descriptions past the registry's are
// unknown ids, which it maps to generic series.
func AppendMessage(b []byte, probeID, resource, seq, tsMs int64, dataItems int, value ValueFunc) []byte {
	if value == nil {
		value = SampleValue
	}
	b = append(b, `{"probeId":`...)
	b = strconv.AppendInt(b, probeID, 10)
	b = append(b, `,"resourceId":`...)
	b = strconv.AppendInt(b, resource, 10)
	b = append(b, `,"messageId":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"sentTime":`...)
	b = strconv.AppendInt(b, tsMs/1000, 10)
	b = append(b, `,"data":[`...)
	for d := range dataItems {
		if d > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"descriptionId":`...)
		b = strconv.AppendInt(b, int64(d), 10)
		if d%5 == 4 {
			b = append(b, `,"type":"event","observations":[{"time":`...)
		} else {
			b = append(b, `,"type":"measurement","observations":[{"time":`...)
		}
		b = strconv.AppendInt(b, tsMs, 10)
		b = append(b, `,"value":`...)
		b = strconv.AppendFloat(b, value(seq, d), 'f', -1, 64)
		b = append(b, "}]}"...)
	}
	return append(b, "]}"...)
}

// ValueFunc is the value of data item d of message seq.
type ValueFunc func(seq int64, d int) float64

// SampleValue varies per message and series, as real data does (the
// TSDB's XOR chunks compress constant values to almost nothing).
func SampleValue(seq int64, d int) float64 { return float64(seq%100000*31+int64(d)*7) + 0.25 }

// Post posts a TMA body as the probe.
func Post(ctx context.Context, client loadgen.Doer, cfg SendConfig, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(cfg.User, cfg.Password)
	return loadgen.RoundTrip(client, req)
}
