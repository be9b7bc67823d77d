package labeler

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/pkg/tma"
)

// handleTMA maps a batch of topic-monitor records (each one TMA message,
// or an array of them) and publishes what they make to topic-metrics in
// one Publish (batchOut); it returns, and the records are acknowledged,
// only once the broker acknowledged it. An undecodable record is a
// permanent error of its own.
func (s *Service) handleTMA(ctx context.Context, msgs []*message.Message) []error {
	snap := s.snap.Load()
	var errs []error
	var st stats
	bo := s.newBatchOut(len(msgs))
	for i, msg := range msgs {
		decoded, err := tma.Decode(msg.Payload)
		if err != nil {
			s.metrics.undecodable.WithLabelValues(contract.TopicMonitor).Inc()
			errs = bus.Fail(errs, len(msgs), i, bus.Permanent(fmt.Errorf("decode tma message: %w", err)))
			continue
		}
		for j := range decoded {
			m := &decoded[j]
			rec := s.recordOf(msg)
			if rec.tenant == "" {
				// Written to Kafka by a TMA probe directly, not through the
				// monitor: the registry's probe tenant, as the monitor would.
				rec.tenant = contract.DefaultTenant
				if p := snap.probes[m.ProbeID]; p != nil {
					rec.tenant = p.Tenant
				}
			}
			series := snap.mapTMA(m, rec, &st)
			bo.add(msg, snap.finish(series, rec, samples.SourceTMA, &st, snap.resources[m.ResourceID]))
		}
	}
	return s.publish(ctx, inputTMA, bo, st, errs)
}

// handleSamples relabels a batch of topic-samples records (Avro sample
// batches) and publishes them regrouped by resource, as handleTMA does.
func (s *Service) handleSamples(ctx context.Context, msgs []*message.Message) []error {
	snap := s.snap.Load()
	var errs []error
	var st stats
	bo := s.newBatchOut(len(msgs))
	for i, msg := range msgs {
		d := s.decoders.Get().(*samples.Decoder)
		// The decoder's memory backs the batch until it is encoded again.
		defer s.decoders.Put(d)
		in, err := d.Decode(msg.Payload)
		if err != nil {
			s.metrics.undecodable.WithLabelValues(contract.TopicSamples).Inc()
			errs = bus.Fail(errs, len(msgs), i, bus.Permanent(err))
			continue
		}
		rec := s.recordOf(msg)
		if rec.tenant == "" {
			rec.tenant = in.Tenant
		}
		if rec.tenant == "" {
			rec.tenant = contract.DefaultTenant
		}
		bo.add(msg, snap.finish(labelled(in.Series, rec), rec, in.Source, &st, nil))
	}
	return s.publish(ctx, inputSamples, bo, st, errs)
}

// recordOf reads the headers of a consumed record. The tenant header is
// set by the authenticating ingest (monitor, bridge), so it wins over
// anything in the payload.
func (s *Service) recordOf(msg *message.Message) record {
	return record{
		tenant:    msg.Metadata.Get(contract.HeaderTenant),
		source:    msg.Metadata.Get(contract.HeaderSource),
		mqttTopic: msg.Metadata.Get(contract.HeaderMQTTTopic),
	}
}

// publish sends what a batch of records made to topic-metrics in one
// Publish and counts it once acknowledged; on failure every record not
// already failed gets the error (they are retried together: their
// effects are one produce).
func (s *Service) publish(ctx context.Context, input string, bo *batchOut, st stats, errs []error) []error {
	msgs := bo.messages(ctx)
	if len(msgs) > 0 {
		if err := s.pub.Publish(contract.TopicMetrics, msgs...); err != nil {
			err = fmt.Errorf("publish to %s: %w", contract.TopicMetrics, err)
			if errs == nil {
				errs = make([]error, bo.records)
			}
			for i := range errs {
				if errs[i] == nil {
					errs[i] = err
				}
			}
			return errs
		}
	}
	s.count(input, bo.outs, st)
	return errs
}

// count updates the metrics once a record's batches are published, so a
// retried record is not counted twice.
func (s *Service) count(input string, outs []out, st stats) {
	series, smp := 0, 0
	for i := range outs {
		series += len(outs[i].batch.Series)
		for j := range outs[i].batch.Series {
			smp += len(outs[i].batch.Series[j].Samples)
		}
	}
	s.metrics.batches.WithLabelValues(input).Add(float64(len(outs)))
	s.metrics.series.WithLabelValues(input).Add(float64(series))
	s.metrics.samples.WithLabelValues(input).Add(float64(smp))
	// The series exist from the start (newMetrics): a label lookup only
	// for what is there to count.
	addNonZero(s.metrics.unknown, st.unknownProbe, "probe")
	addNonZero(s.metrics.unknown, st.unknownResource, "resource")
	addNonZero(s.metrics.unknown, st.unknownDescription, "description")
	addNonZero(s.metrics.dropped, st.droppedByRule, input, "label_rule")
	addNonZero(s.metrics.dropped, st.droppedInvalid, input, "invalid")
}

func addNonZero(c *prometheus.CounterVec, n int, lvs ...string) {
	if n != 0 {
		c.WithLabelValues(lvs...).Add(float64(n))
	}
}
