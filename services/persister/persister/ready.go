package persister

import (
	"context"
	"sync"
	"time"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// lagTracker follows how far the TSDB consumer is behind the partition
// ends, from the position of each record it consumed (bus.Position, which
// the Kafka adapter puts in the message context).
type lagTracker struct {
	mu   sync.Mutex
	lags map[int]int64 // partition → records behind its end
}

func newLagTracker() *lagTracker { return &lagTracker{lags: map[int]int64{}} }

// observe records the lag after the record of a consumed message.
func (l *lagTracker) observe(ctx context.Context) {
	rec, ok := bus.PositionFromContext(ctx)
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

// consumerLag is the lag readiness waits on: from the hook, else from
// the records consumed — known only after the settle time, so every
// partition with a backlog had its chance to deliver a first record.
func (s *Service) consumerLag(started time.Time) service.LagFunc {
	return func(ctx context.Context) (int64, bool, error) {
		if s.lagHook != nil {
			lag, err := s.lagHook(ctx)
			return lag, err == nil, err
		}
		if s.now().Sub(started) < s.cfg.Ready.Settle {
			return 0, false, nil
		}
		lag, known := s.lag.total()
		return lag, known, nil
	}
}

// watchReady marks the prober ready once the TSDB consumer runs and
// caught up, then leaves it: a burst of records later is load, not a
// reason to take the query API out of service.
func (s *Service) watchReady(ctx context.Context) {
	s.prober.NotReady("starting: tsdb open, consumer not yet running")
	select {
	case <-s.consumer.Running():
	case <-ctx.Done():
		return
	}
	started := s.now()
	lag, ok := service.CatchUp{
		Config:  s.cfg.Ready,
		Lag:     s.consumerLag(started),
		Topics:  contract.TopicMetrics,
		Prober:  s.prober,
		Now:     s.now,
		Observe: func(lag int64) { s.ingest.lag.Set(float64(lag)) },
	}.Wait(ctx)
	if !ok {
		return
	}
	s.logger.Info("caught up with topic-metrics, ready", "lag", lag, "after", s.now().Sub(started))
	s.caught.Store(true)
	s.ingest.caughtUp.Set(1)
	s.prober.Ready()
}
