// Package loadgen posts TMA messages to a monitor endpoint over keep-alive
// connections and measures throughput and latency: the engine of
// `make bench-ingest`.
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Config is one load run.
type Config struct {
	URL         string
	Concurrency int
	Duration    time.Duration
	// Warmup runs the same load before measuring, so connections are open
	// and the server's pools and caches are warm.
	Warmup time.Duration
	// Rate, when > 0, sends that many requests per second on a fixed
	// schedule (open loop) instead of as fast as the workers can; latency
	// is then measured from each request's scheduled time, so a stalled
	// server is not hidden by workers that stop sending.
	Rate float64
	// Bodies are posted round-robin.
	Bodies [][]byte
	// ObservationsPerBody is reported as observations/s.
	ObservationsPerBody int
	User, Password      string
}

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.URL == "":
		return errors.New("url: empty")
	case c.Concurrency < 1:
		return fmt.Errorf("concurrency %d: must be at least 1", c.Concurrency)
	case c.Duration <= 0:
		return fmt.Errorf("duration %s: must be positive", c.Duration)
	case c.Warmup < 0:
		return fmt.Errorf("warmup %s: must not be negative", c.Warmup)
	case c.Rate < 0:
		return fmt.Errorf("rate %g: must not be negative", c.Rate)
	case len(c.Bodies) == 0:
		return errors.New("bodies: none")
	}
	return nil
}

// Result is what one run measured.
type Result struct {
	Requests     int // answered 2xx
	Failures     int // other statuses and transport errors
	Statuses     map[int]int
	FirstError   error
	Elapsed      time.Duration
	Observations int
	P50, P99     time.Duration
	Max          time.Duration
	// CPU is the user and system CPU time of the whole process during the
	// run: with an in-process server, server and client together. Unlike
	// rates it hardly depends on what else the machine runs.
	CPU time.Duration
}

// CPUPerRequest is the process CPU time per answered request.
func (r Result) CPUPerRequest() time.Duration {
	n := r.Requests + r.Failures
	if n == 0 {
		return 0
	}
	return r.CPU / time.Duration(n)
}

// RequestsPerSecond is the rate of 2xx answers.
func (r Result) RequestsPerSecond() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

// ObservationsPerSecond is the rate of accepted observations.
func (r Result) ObservationsPerSecond() float64 {
	return float64(r.Observations) / r.Elapsed.Seconds()
}

// newTransport is a transport that keeps one connection per worker open.
func newTransport(concurrency int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        concurrency,
		MaxIdleConnsPerHost: concurrency,
		MaxConnsPerHost:     concurrency,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

// Run sends load as configured and measures it. The transport is closed
// when Run returns.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	tr := newTransport(cfg.Concurrency)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	if cfg.Warmup > 0 {
		w := cfg
		w.Duration = cfg.Warmup
		if _, err := run(ctx, client, w); err != nil {
			return Result{}, fmt.Errorf("warm up: %w", err)
		}
	}
	return run(ctx, client, cfg)
}

type worker struct {
	lat        []time.Duration
	ok, failed int
	statuses   map[int]int
	firstErr   error
}

func run(ctx context.Context, client *http.Client, cfg Config) (Result, error) {
	// Workers stop sending at the end of the run but let their last
	// request finish: canceling it would close its connection, and the
	// next run would measure connection setup.
	sending, stop := context.WithTimeout(ctx, cfg.Duration)
	defer stop()

	// Scheduled send times in rate mode; nil in closed-loop mode.
	var sched chan time.Time
	start := time.Now()
	var wg sync.WaitGroup
	if cfg.Rate > 0 {
		sched = make(chan time.Time, cfg.Concurrency)
		wg.Go(func() { schedule(sending, start, cfg.Rate, sched) })
	}
	cpuBefore := ProcessCPU()
	workers := make([]*worker, cfg.Concurrency)
	for i := range workers {
		w := &worker{statuses: map[int]int{}, lat: make([]time.Duration, 0, 4096)}
		workers[i] = w
		wg.Go(func() { w.loop(ctx, sending, client, cfg, i, sched) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := ProcessCPU() - cpuBefore
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("load run: %w", err)
	}

	res := Result{Statuses: map[int]int{}, Elapsed: elapsed, CPU: cpu}
	var lat []time.Duration
	for _, w := range workers {
		res.Requests += w.ok
		res.Failures += w.failed
		for k, v := range w.statuses {
			res.Statuses[k] += v
		}
		if res.FirstError == nil {
			res.FirstError = w.firstErr
		}
		lat = append(lat, w.lat...)
	}
	res.Observations = res.Requests * cfg.ObservationsPerBody
	slices.Sort(lat)
	res.P50, res.P99 = Percentile(lat, 0.50), Percentile(lat, 0.99)
	if len(lat) > 0 {
		res.Max = lat[len(lat)-1]
	}
	return res, nil
}

// schedule emits one send time per 1/rate s from start until ctx ends. It
// blocks when every worker is busy, so overload shows as latency.
func schedule(ctx context.Context, start time.Time, rate float64, out chan<- time.Time) {
	defer close(out)
	interval := time.Duration(float64(time.Second) / rate)
	for i := int64(0); ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			// Sleeping per request at 10k/s would be all timer overhead;
			// sends due within a millisecond go out together.
			if d > time.Millisecond {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case out <- at:
		}
	}
}

// loop sends until sending ends; ctx cancels requests in flight (the
// caller gave up).
func (w *worker) loop(ctx, sending context.Context, client *http.Client, cfg Config, id int, sched <-chan time.Time) {
	n := id
	for {
		var began time.Time
		if sched != nil {
			at, ok := <-sched
			if !ok {
				return
			}
			began = at
		} else {
			if sending.Err() != nil {
				return
			}
			began = time.Now()
		}
		body := cfg.Bodies[n%len(cfg.Bodies)]
		n += cfg.Concurrency
		status, err := post(ctx, client, cfg, body)
		if ctx.Err() != nil {
			return
		}
		lat := time.Since(began)
		w.statuses[status]++
		if err != nil || status < 200 || status > 299 {
			w.failed++
			if w.firstErr == nil {
				if err == nil {
					err = fmt.Errorf("status %d", status)
				}
				w.firstErr = err
			}
			continue
		}
		w.ok++
		w.lat = append(w.lat, lat)
	}
}

func post(ctx context.Context, client *http.Client, cfg Config, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if cfg.User != "" {
		req.SetBasicAuth(cfg.User, cfg.Password)
	}
	return RoundTrip(client, req)
}

// RoundTrip sends req and drains the answer, so the connection is reused.
func RoundTrip(client Doer, req *http.Request) (int, error) {
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

// Percentile is the nearest-rank q-quantile (0 < q ≤ 1) of sorted
// durations; the benchmarks all report with it.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// Rank ⌈q·n⌉; the epsilon keeps 0.99·100 from rounding up to 100.
	i := int(math.Ceil(q*float64(len(sorted))-1e-9)) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// ProcessCPU is the user and system CPU time the process used so far.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0 // not measurable: the report shows 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
