package bridge

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"golang.org/x/time/rate"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/registry"
	"github.com/tmaflow/tmaflow/pkg/samples"
)

// maxErrorHeader bounds the error header of a dead letter, as the bus's.
const maxErrorHeader = 1024

// pipeline takes MQTT messages of either broker mode to the bus: route,
// decode (or dead-letter), throttle per tenant, and wait for the bus.
type pipeline struct {
	mapping  atomic.Pointer[Mapping]
	batcher  *batcher
	sem      chan struct{} // in-flight slots
	admit    func() error
	retry    time.Duration
	perSec   float64
	logger   *slog.Logger
	metrics  *metrics
	limitsMu sync.Mutex
	limits   map[string]*rate.Limiter
}

func newPipeline(cfg Config, m *Mapping, pub message.Publisher, now func() time.Time, admit func() error, logger *slog.Logger, met *metrics) *pipeline {
	p := &pipeline{
		batcher: newBatcher(pub, cfg.MaxBatch, cfg.PublishTimeout, now, met),
		sem:     make(chan struct{}, cfg.MaxInflight),
		admit:   admit,
		retry:   cfg.RetryInterval,
		perSec:  cfg.MessagesPerSecond,
		logger:  logger,
		metrics: met,
		limits:  map[string]*rate.Limiter{},
	}
	p.mapping.Store(m)
	return p
}

// handle stores one MQTT message: nil once the bus acknowledged its
// records, or its dead letter when it can never be stored; an error only
// when ctx ended first (the client is then not acknowledged).
func (p *pipeline) handle(ctx context.Context, in inbound) error {
	tenant := in.tenant
	p.metrics.received.WithLabelValues(tenant).Inc()
	if err := p.throttle(ctx, tenant); err != nil {
		return err
	}
	if err := p.admitted(ctx); err != nil {
		return err
	}
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.metrics.inflight.Inc()
	defer func() {
		<-p.sem
		p.metrics.inflight.Dec()
	}()

	d, err := p.decode(in)
	if err != nil {
		p.metrics.deadLettered.WithLabelValues(tenant).Inc()
		p.logger.Debug("mqtt message dead-lettered", "tenant", tenant, "topic", in.topic, "err", err)
		d = deadLetter(in, err)
	}
	if err := p.batcher.store(ctx, d, p.retry); err != nil {
		return err
	}
	p.metrics.acked.WithLabelValues(tenant).Inc()
	return nil
}

// errNoRoute dead-letters a message no route of its tenant matches.
var errNoRoute = errors.New("no route of the tenant's mapping matches the topic")

func (p *pipeline) decode(in inbound) (decoded, error) {
	t := p.mapping.Load().Tenants[in.tenant]
	if t == nil {
		return decoded{}, errNoRoute
	}
	var buf [8]samples.Label
	r, captures := t.route(in.topic, buf[:0])
	if r == nil {
		return decoded{}, errNoRoute
	}
	return decode(in, r, captures)
}

// throttle waits while the tenant is above its messages/s.
func (p *pipeline) throttle(ctx context.Context, tenant string) error {
	if p.perSec <= 0 {
		return nil
	}
	p.limitsMu.Lock()
	l := p.limits[tenant]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(p.perSec), max(1, int(p.perSec)))
		p.limits[tenant] = l
	}
	p.limitsMu.Unlock()
	if l.Allow() {
		return nil
	}
	p.metrics.throttled.WithLabelValues(tenant).Inc()
	return l.Wait(ctx)
}

// admitted waits while the process's budget refuses ingest (memory, disk):
// the client stays unacknowledged, as when the bus is down.
func (p *pipeline) admitted(ctx context.Context) error {
	for p.admit != nil && p.admit() != nil {
		t := time.NewTimer(p.retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// mergeFor turns merging of sample records on when the labeler's rules of
// file cannot read the mqtt-topic header of a record (__mqtt_topic__):
// merged records have none. Without a registry the rules are unknown.
func (p *pipeline) mergeFor(file *registry.File) {
	merge := file != nil
	if merge {
		for _, r := range file.LabelRules {
			if slices.Contains(r.SourceLabels, metaMQTTTopic) || r.Action == registry.ActionLabelMap {
				merge = false
			}
		}
	}
	p.batcher.merge.Store(merge)
}

// metaMQTTTopic is the label the labeler's rules read the mqtt-topic
// header as.
const metaMQTTTopic = "__mqtt_topic__"

// deadLetter is the topic-dlq record of an MQTT message: its bytes, the
// reason, and the MQTT topic as the source topic.
func deadLetter(in inbound, cause error) decoded {
	m := message.NewMessage("", append([]byte(nil), in.payload...))
	text := cause.Error()
	if len(text) > maxErrorHeader {
		text = truncate(text, maxErrorHeader)
	}
	m.Metadata[contract.HeaderTenant] = in.tenant
	m.Metadata[contract.HeaderSource] = contract.SourceMQTT
	m.Metadata[contract.HeaderReceivedAt] = strconv.FormatInt(in.received.UnixNano(), 10)
	m.Metadata[contract.HeaderError] = text
	m.Metadata[contract.HeaderSourceTopic] = in.topic
	m.Metadata[contract.HeaderStage] = Stage
	m.Metadata[contract.HeaderMQTTTopic] = in.topic
	return decoded{topic: contract.TopicDLQ, records: []*message.Message{m}}
}
