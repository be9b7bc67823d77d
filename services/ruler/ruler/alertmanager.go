package ruler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/service"
)

// amQueue delivers alerts to one Alertmanager (POST /api/v2/alerts). A
// worker sends whatever is queued at once, with no batching timer; a
// failed request is retried with backoff, together with what arrived
// meanwhile, until it succeeds or the queue overflows (the oldest alerts
// are dropped and counted). A newer alert with the same fingerprint
// replaces a queued one.
type amQueue struct {
	url      string
	client   *http.Client
	cfg      AlertingConfig
	logger   *slog.Logger
	sent     prometheus.Counter
	failed   prometheus.Counter
	dropped  prometheus.Counter
	duration prometheus.Observer

	mu      sync.Mutex
	pending []queued
	index   map[string]int // fingerprint → position in pending
	wake    chan struct{}
}

type queued struct {
	alert *Alert
	at    time.Time // when it was produced, for the delivery latency
}

func newAMQueue(base string, client *http.Client, cfg AlertingConfig, m *metrics, logger *slog.Logger) *amQueue {
	return &amQueue{
		url:      strings.TrimSuffix(base, "/") + "/api/v2/alerts",
		client:   client,
		cfg:      cfg,
		logger:   logger.With("alertmanager", base),
		sent:     m.alertsSent.WithLabelValues(base),
		failed:   m.alertsFailed.WithLabelValues(base),
		dropped:  m.alertsDropped.WithLabelValues(base),
		duration: m.alertLatency.WithLabelValues(base),
		index:    map[string]int{},
		wake:     make(chan struct{}, 1),
	}
}

func (q *amQueue) push(alerts []*Alert) {
	now := time.Now()
	q.mu.Lock()
	for _, a := range alerts {
		if i, ok := q.index[a.Fingerprint]; ok {
			q.pending[i] = queued{a, now}
			continue
		}
		q.index[a.Fingerprint] = len(q.pending)
		q.pending = append(q.pending, queued{a, now})
	}
	if over := len(q.pending) - q.cfg.QueueCapacity; over > 0 {
		q.dropped.Add(float64(over))
		q.logger.Warn("alertmanager queue full, oldest alerts dropped", "dropped", over)
		q.pending = append(q.pending[:0:0], q.pending[over:]...)
		q.reindex()
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *amQueue) reindex() {
	clear(q.index)
	for i, p := range q.pending {
		q.index[p.alert.Fingerprint] = i
	}
}

// take empties the queue.
func (q *amQueue) take() []queued {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.pending
	q.pending = nil
	clear(q.index)
	return out
}

// requeue puts back a failed batch ahead of what arrived meanwhile, unless
// a newer version of an alert is queued already.
func (q *amQueue) requeue(batch []queued) {
	q.mu.Lock()
	defer q.mu.Unlock()
	merged := make([]queued, 0, len(batch)+len(q.pending))
	for _, b := range batch {
		if _, newer := q.index[b.alert.Fingerprint]; !newer {
			merged = append(merged, b)
		}
	}
	q.pending = append(merged, q.pending...)
	if over := len(q.pending) - q.cfg.QueueCapacity; over > 0 {
		q.dropped.Add(float64(over))
		q.pending = q.pending[over:]
	}
	q.reindex()
}

// run delivers until ctx ends; then it tries once more to deliver what is
// queued, within the shutdown deadline of drain.
func (q *amQueue) run(ctx context.Context, drain context.Context) {
	backoff := q.cfg.MinBackoff
	for {
		select {
		case <-ctx.Done():
			if rest := q.take(); len(rest) > 0 {
				if err := q.post(drain, rest); err != nil {
					q.dropped.Add(float64(len(rest)))
					q.logger.Warn("alerts not delivered before shutdown", "alerts", len(rest), "err", err)
				}
			}
			return
		case <-q.wake:
		}
		batch := q.take()
		if len(batch) == 0 {
			continue
		}
		if err := q.post(ctx, batch); err != nil {
			q.failed.Add(float64(len(batch)))
			q.logger.Warn("send alerts to alertmanager, retrying", "alerts", len(batch), "backoff", backoff, "err", err)
			q.requeue(batch)
			service.Sleep(ctx, backoff)
			backoff = min(2*backoff, q.cfg.MaxBackoff)
			select {
			case q.wake <- struct{}{}:
			default:
			}
			continue
		}
		backoff = q.cfg.MinBackoff
	}
}

func (q *amQueue) post(ctx context.Context, batch []queued) error {
	body := make([]postable, len(batch))
	for i, b := range batch {
		body[i] = b.alert.postable()
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode alerts: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.url, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("post %s: %w", q.url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := q.client.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", q.url, err)
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, resp.Body)
	if err := resp.Body.Close(); err != nil {
		return fmt.Errorf("post %s: close body: %w", q.url, err)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post %s: %s: %s", q.url, resp.Status, strings.TrimSpace(string(msg)))
	}
	now := time.Now()
	for _, b := range batch {
		q.duration.Observe(max(0, now.Sub(b.at).Seconds()))
	}
	q.sent.Add(float64(len(batch)))
	return nil
}
