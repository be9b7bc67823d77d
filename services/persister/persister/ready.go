package persister

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
)

// lagTracker follows how far the TSDB consumer is behind the partition
// ends, from the position of each record it consumed (the Kafka adapter
// puts it in the message context; other subscribers do not).
type lagTracker struct {
	mu   sync.Mutex
	lags map[int]int64 // partition → records behind its end
}

func newLagTracker() *lagTracker { return &lagTracker{lags: map[int]int64{}} }

// observe records the lag after the record of a consumed message.
func (l *lagTracker) observe(ctx context.Context) {
	rec, ok := kafka.RecordFromContext(ctx)
	if !ok {
		return
	}
	l.mu.Lock()
	l.lags[rec.Partition] = max(rec.HighWaterMark-rec.Offset-1, 0)
	l.mu.Unlock()
}

// total is the summed lag of the partitions seen; known is false before
// the first record with a position.
func (l *lagTracker) total() (lag int64, known bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, v := range l.lags {
		lag += v
	}
	return lag, len(l.lags) > 0
}

// caughtUp judges readiness once: the consumer runs, the settle time has
// passed (so every partition with a backlog delivered a first record), and
// the lag — from the hook, else from the records consumed — is within
// the bound. No record at all by then means nothing to catch up on.
func (s *Service) caughtUp(ctx context.Context, started time.Time) (bool, string) {
	if since := s.now().Sub(started); since < s.cfg.Ready.Settle {
		return false, "starting: consumer settling"
	}
	var (
		lag   int64
		known bool
	)
	if s.lagHook != nil {
		l, err := s.lagHook(ctx)
		if err != nil {
			return false, "consumer lag unknown: " + err.Error()
		}
		lag, known = l, true
	} else {
		lag, known = s.lag.total()
	}
	if known {
		s.ingest.lag.Set(float64(lag))
	}
	if known && lag > s.cfg.Ready.MaxLag {
		return false, fmt.Sprintf("catching up: %d records behind topic-metrics", lag)
	}
	return true, ""
}

// watchReady marks the prober ready once the router runs and the consumer
// caught up, then leaves it: a burst of records later is load, not a
// reason to take the query API out of service.
func (s *Service) watchReady(ctx context.Context) {
	s.prober.NotReady("starting: tsdb open, consumer not yet running")
	select {
	case <-s.router.Running():
	case <-ctx.Done():
		return
	}
	started := s.now()
	t := time.NewTicker(s.cfg.Ready.CheckInterval)
	defer t.Stop()
	for {
		ok, reason := s.caughtUp(ctx, started)
		if ctx.Err() != nil {
			return
		}
		if ok {
			lag, _ := s.lag.total()
			s.logger.Info("caught up with topic-metrics, ready", "lag", lag, "after", s.now().Sub(started))
			s.caught.Store(true)
			s.ingest.caughtUp.Set(1)
			s.prober.Ready()
			return
		}
		s.prober.NotReady(reason)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
