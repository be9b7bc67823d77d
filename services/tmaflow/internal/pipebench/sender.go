package pipebench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tmaflow/tmaflow/services/tmaflow/internal/loadgen"
)

// sendConfig is one run of TMA messages against the monitor.
type sendConfig struct {
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
}

// sendStats counts what the monitor answered; safe for concurrent use.
type sendStats struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	firstErr   error
}

func (s *sendStats) fail(err error) {
	s.failed.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.firstErr == nil {
		s.firstErr = err
	}
}

func (s *sendStats) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstErr
}

// resourceClock hands out strictly increasing millisecond timestamps per
// resource that follow the wall clock: the TSDB (and Prometheus) store
// exactly one sample per series and timestamp, so a benchmark repeating
// timestamps would measure refusals, not storage.
type resourceClock struct {
	last []int64
}

func (c *resourceClock) next(i int, now time.Time) int64 {
	ts := max(now.UnixMilli(), c.last[i]+1)
	c.last[i] = ts
	return ts
}

// send posts messages until ctx ends. Worker w owns the resources at
// index w, w+C, …, so each resource's messages leave one at a time and in
// timestamp order, as a probe sends them. With a rate each worker keeps
// its own schedule and sends late messages at once (open loop: a slow
// monitor is not given slack by fewer sends).
func send(ctx context.Context, cfg sendConfig, st *sendStats) {
	conc := min(cfg.Concurrency, len(cfg.Resources))
	client := &http.Client{Transport: loadgen.NewTransport(conc), Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(conc*max(cfg.Batch, 1)) / cfg.Rate * float64(time.Second))
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, own := range deal(cfg.Resources, conc) {
		wg.Go(func() { sendLoop(ctx, client, cfg, own, start, interval, st) })
	}
	wg.Wait()
}

// deal splits items into n hands: hand w holds items w, w+n, w+2n, …
func deal[T any](items []T, n int) [][]T {
	hands := make([][]T, n)
	for i, it := range items {
		hands[i%n] = append(hands[i%n], it)
	}
	return hands
}

func sendLoop(ctx context.Context, client *http.Client, cfg sendConfig, own []int64, start time.Time, interval time.Duration, st *sendStats) {
	clock := resourceClock{last: make([]int64, len(own))}
	var buf []byte
	for k := int64(0); ctx.Err() == nil; k++ {
		if interval > 0 {
			if d := time.Until(start.Add(time.Duration(k) * interval)); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
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
			buf = appendMessage(buf, cfg.ProbeID, own[i], seq, clock.next(i, now), cfg.DataItems)
		}
		if batch > 1 {
			buf = append(buf, ']')
		}
		status, err := post(ctx, client, cfg, buf)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			st.fail(err)
		case status != http.StatusOK:
			st.fail(fmt.Errorf("monitor answered %d", status))
		default:
			st.ok.Add(int64(batch))
		}
	}
}

// appendMessage appends a TMA message of resource with dataItems data
// items of one observation each at tsMs (milliseconds, as Java probes
// send). Every fifth data item is an event, as in the ingest benchmark, so
// the labeler maps both kinds; descriptions past the registry's are
// unknown ids, which it maps to generic series.
func appendMessage(b []byte, probeID, resource, seq, tsMs int64, dataItems int) []byte {
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
		b = strconv.AppendFloat(b, sampleValue(seq, d), 'f', -1, 64)
		b = append(b, "}]}"...)
	}
	return append(b, "]}"...)
}

// sampleValue varies per message and series, as real data does (the
// TSDB's XOR chunks compress constant values to almost nothing).
func sampleValue(seq int64, d int) float64 { return float64(seq%100000*31+int64(d)*7) + 0.25 }

func post(ctx context.Context, client *http.Client, cfg sendConfig, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(cfg.User, cfg.Password)
	return roundTrip(client, req)
}

// roundTrip sends req and drains the answer, so the connection is reused.
func roundTrip(client *http.Client, req *http.Request) (int, error) {
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	return resp.StatusCode, err
}
