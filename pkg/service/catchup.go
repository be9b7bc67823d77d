package service

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// CatchUpConfig bounds what "caught up" means for the readiness of a
// consumer: a service that answers queries over, or forwards, what it
// consumed is ready only once it is near the partition ends.
type CatchUpConfig struct {
	MaxLag        int64
	Settle        time.Duration
	CheckInterval time.Duration
}

// RegisterFlags registers the ready.* flags; consumer names what lags in
// the help text (e.g. "the TSDB consumer").
func (c *CatchUpConfig) RegisterFlags(f FlagSet, consumer string) {
	f.Int64Var(&c.MaxLag, "ready.max-lag", 1000, "Records "+consumer+" may be behind the partition ends and still turn ready.")
	f.DurationVar(&c.Settle, "ready.settle", 2*time.Second, "How long after start an unknown lag (nothing consumed yet) keeps the consumer not ready; after it, nothing to catch up on.")
	f.DurationVar(&c.CheckInterval, "ready.check-interval", 500*time.Millisecond, "How often readiness is re-evaluated until caught up.")
}

// Validate checks the bounds.
func (c CatchUpConfig) Validate() error {
	var errs []error
	if c.MaxLag < 0 {
		errs = append(errs, fmt.Errorf("ready.max-lag must be >= 0, got %d", c.MaxLag))
	}
	if c.Settle < 0 {
		errs = append(errs, fmt.Errorf("ready.settle must be >= 0, got %s", c.Settle))
	}
	if c.CheckInterval <= 0 {
		errs = append(errs, fmt.Errorf("ready.check-interval must be > 0, got %s", c.CheckInterval))
	}
	return errors.Join(errs...)
}

// LagFunc returns how many records a consumer is behind; known is false
// while it cannot tell (no position seen yet).
type LagFunc func(context.Context) (lag int64, known bool, err error)

// CatchUp is one wait for a consumer to catch up after start.
type CatchUp struct {
	Config CatchUpConfig
	// Lag measures the consumer. Required.
	Lag LagFunc
	// Topics names what is consumed, for the not-ready reason.
	Topics string
	// Prober gets the reasons while not caught up. Required.
	Prober *Prober
	// Now is the clock of the settle time. Nil: time.Now.
	Now func() time.Time
	// Observe, if set, gets every known lag (e.g. for a gauge).
	Observe func(lag int64)
}

// Wait polls until the consumer is caught up — its lag is known to be
// within Config.MaxLag, or still unknown once the settle time passed,
// meaning there was nothing to catch up on — and returns the last lag
// with true; or false once ctx ends. It does not mark the prober ready: the caller
// decides what else readiness needs.
func (c CatchUp) Wait(ctx context.Context) (int64, bool) {
	now := c.Now
	if now == nil {
		now = time.Now
	}
	started := now()
	t := time.NewTicker(c.Config.CheckInterval)
	defer t.Stop()
	for {
		lag, reason := c.check(ctx, now().Sub(started))
		if ctx.Err() != nil {
			return lag, false
		}
		if reason == "" {
			return lag, true
		}
		c.Prober.NotReady(reason)
		select {
		case <-ctx.Done():
			return lag, false
		case <-t.C:
		}
	}
}

// check returns the lag and why the consumer is not caught up ("" if it is).
func (c CatchUp) check(ctx context.Context, since time.Duration) (int64, string) {
	lag, known, err := c.Lag(ctx)
	if err != nil {
		return 0, "consumer lag unknown: " + err.Error()
	}
	if !known {
		if since < c.Config.Settle {
			return 0, "starting: consumer settling"
		}
		return 0, ""
	}
	if c.Observe != nil {
		c.Observe(lag)
	}
	if lag > c.Config.MaxLag {
		return lag, fmt.Sprintf("catching up: %d records behind %s", lag, c.Topics)
	}
	return lag, ""
}
