package ruler

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/samples"
)

// Stage is the stage header of the ruler's dead letters.
const Stage = "ruler"

// maxErrorHeader bounds the error header of a dead letter.
const maxErrorHeader = 1024

// Outcomes of records and samples.
const (
	outcomeStored   = "stored"
	outcomeSkipped  = "skipped"
	outcomeInvalid  = "invalid"
	outcomeAppended = "appended"
	outcomeTooOld   = "too_old"
	outcomeRefused  = "refused"
)

// handleMetrics takes one record of topic-metrics: decoded, its samples in
// the window go to the head, and (once live) every group selecting one of
// its series is triggered. Undecodable records go to topic-dlq.
func (s *Service) handleMetrics(rec Record) {
	d := s.decoders.Get().(*samples.Decoder)
	defer s.decoders.Put(d)
	b, err := d.Decode(rec.Value)
	if err == nil && b.Tenant == "" {
		err = errors.New("sample batch has no tenant")
	}
	if h := rec.Headers[contract.HeaderTenant]; err == nil && h != "" && h != b.Tenant {
		err = fmt.Errorf("tenant header %q differs from the batch tenant %q", h, b.Tenant)
	}
	if err != nil {
		s.metrics.batches.WithLabelValues(outcomeInvalid).Inc()
		s.deadLetter(rec, err)
		return
	}
	if !s.keepTenant(b.Tenant) {
		s.metrics.batches.WithLabelValues(outcomeSkipped).Inc()
		return
	}
	receivedAt, _ := strconv.ParseInt(rec.Headers[contract.HeaderReceivedAt], 10, 64)
	s.ingest(b, receivedAt)
}

// ingest appends b to the window and triggers the groups it concerns.
// Results of recording rules (source rule) trigger nothing here: they did
// when they were recorded.
func (s *Service) ingest(b *samples.Batch, receivedAt int64) {
	minT := s.now().Add(-s.cfg.Window).UnixMilli()
	app := s.win.Appender(context.Background())
	lset := make([]labels.Labels, len(b.Series))
	newest := make([]int64, len(b.Series))
	var appended, tooOld, refused int
	builder := labels.NewScratchBuilder(8)
	for i, ser := range b.Series {
		builder.Reset()
		for _, l := range ser.Labels {
			if l.Name != TenantLabel {
				builder.Add(l.Name, l.Value)
			}
		}
		builder.Add(TenantLabel, b.Tenant)
		builder.Sort()
		lset[i] = builder.Labels()
		newest[i] = minT - 1
		var ref storage.SeriesRef
		for _, smp := range ser.Samples {
			if smp.TimestampMs < minT {
				tooOld++
				continue
			}
			r, err := app.Append(ref, lset[i], smp.TimestampMs, smp.Value)
			if err != nil {
				refused++
				continue
			}
			ref = r
			appended++
			newest[i] = max(newest[i], smp.TimestampMs)
		}
	}
	if err := app.Commit(); err != nil {
		s.logger.Warn("append to window", "tenant", b.Tenant, "err", err)
		refused += appended
		appended = 0
	}
	s.metrics.batches.WithLabelValues(outcomeStored).Inc()
	s.metrics.samples.WithLabelValues(outcomeAppended).Add(float64(appended))
	s.metrics.samples.WithLabelValues(outcomeTooOld).Add(float64(tooOld))
	s.metrics.samples.WithLabelValues(outcomeRefused).Add(float64(refused))
	if appended == 0 || b.Source == samples.SourceRule || !s.live.Load() {
		return
	}
	for i, l := range lset {
		if newest[i] >= minT {
			s.triggerSeries(b.Tenant, l, receivedAt, newest[i], 0, nil)
		}
	}
}

// triggerSeries asks every group of the tenant selecting the series l
// (but skip) for an evaluation.
func (s *Service) triggerSeries(tenant string, l labels.Labels, receivedAt, newestMs int64, hops int32, skip *groupRunner) {
	rs := s.rules.Load()
	ix := rs.tenants[tenant]
	if ix == nil {
		return
	}
	ix.match(l.Get(labels.MetricName), l, func(g *groupRunner) {
		if g != skip {
			g.dataArrived(receivedAt, newestMs, hops)
		}
	})
}

func (s *Service) keepTenant(tenant string) bool {
	if len(s.cfg.Tenants) == 0 {
		return true
	}
	for _, t := range s.cfg.Tenants {
		if t == tenant {
			return true
		}
	}
	return false
}

// deadLetter sends rec to topic-dlq with the reason, without waiting.
func (s *Service) deadLetter(rec Record, cause error) {
	s.metrics.dlq.Inc()
	s.logger.Warn("undecodable record dead-lettered", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "err", cause)
	msg := message.NewMessage(watermill.NewUUID(), rec.Value)
	for k, v := range rec.Headers {
		msg.Metadata.Set(k, v)
	}
	text := cause.Error()
	if len(text) > maxErrorHeader {
		text = strings.ToValidUTF8(text[:maxErrorHeader], "")
	}
	msg.Metadata.Set(contract.HeaderError, text)
	msg.Metadata.Set(contract.HeaderSourceTopic, rec.Topic)
	msg.Metadata.Set(contract.HeaderStage, Stage)
	if rec.Key != nil {
		bus.SetKey(msg, rec.Key)
	}
	s.out.send(contract.TopicDLQ, msg)
}
