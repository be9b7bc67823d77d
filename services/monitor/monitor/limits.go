package monitor

import (
	"math"
	"strconv"
	"sync"
	"time"
)

// LimitsConfig bounds what one tenant may send through the Prometheus
// ingest paths. Zero values mean no limit.
type LimitsConfig struct {
	// MaxSeriesPerRequest refuses larger requests with 413.
	MaxSeriesPerRequest int
	// SamplesPerSecond is each tenant's sustained rate; SamplesBurst the
	// most it may send at once (at least one request's worth).
	SamplesPerSecond float64
	SamplesBurst     int
}

// tenantLimiter is a token bucket of samples per tenant.
type tenantLimiter struct {
	rate, burst float64
	now         func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newTenantLimiter(cfg LimitsConfig, now func() time.Time) *tenantLimiter {
	if cfg.SamplesPerSecond <= 0 {
		return nil
	}
	burst := float64(cfg.SamplesBurst)
	if burst <= 0 {
		burst = cfg.SamplesPerSecond
	}
	return &tenantLimiter{rate: cfg.SamplesPerSecond, burst: burst, now: now, buckets: map[string]*bucket{}}
}

// take takes n samples from tenant's bucket. When they are not there it
// takes nothing and says how long until they would be (n above the burst
// never fits: the wait is then the time to fill the whole bucket).
func (l *tenantLimiter) take(tenant string, n int) (ok bool, wait time.Duration) {
	if l == nil || n == 0 {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, found := l.buckets[tenant]
	if !found {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[tenant] = b
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = math.Min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
		b.last = now
	}
	if float64(n) <= b.tokens {
		b.tokens -= float64(n)
		return true, 0
	}
	missing := math.Min(float64(n), l.burst) - b.tokens
	return false, time.Duration(missing / l.rate * float64(time.Second))
}

// giveBack returns n samples taken for a request that was not accepted
// after all (the broker did not take it).
func (l *tenantLimiter) giveBack(tenant string, n int) {
	if l == nil || n == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[tenant]; ok {
		b.tokens = math.Min(l.burst, b.tokens+float64(n))
	}
}

// retryAfter renders a wait as whole seconds, at least one.
func retryAfter(wait time.Duration) []string {
	secs := int64(math.Ceil(wait.Seconds()))
	return []string{strconv.FormatInt(max(secs, 1), 10)}
}
