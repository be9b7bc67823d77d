package labeler

import (
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/pkg/tma"
)

// HeaderMQTTTopic is the header with the MQTT topic a record was received
// on, which label rules read as __mqtt_topic__.
const HeaderMQTTTopic = "mqtt-topic"

// handleTMA maps a topic-monitor record (one TMA message, or an array of
// them) to enriched batches and publishes them; it returns, and the record
// is acknowledged, only once the broker acknowledged them.
func (s *Service) handleTMA(msg *message.Message) error {
	msgs, err := tma.Decode(msg.Payload)
	if err != nil {
		s.metrics.undecodable.WithLabelValues(contract.TopicMonitor).Inc()
		return bus.Permanent(fmt.Errorf("decode tma message: %w", err))
	}
	snap := s.snap.Load()
	var st stats
	var outs []out
	for i := range msgs {
		m := &msgs[i]
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
		outs = append(outs, snap.finish(series, rec, samples.SourceTMA, &st, snap.resources[m.ResourceID])...)
	}
	if err := s.publish(msg, outs); err != nil {
		return err
	}
	s.count(inputTMA, outs, st)
	return nil
}

// handleSamples relabels a topic-samples record (an Avro sample batch)
// and publishes it regrouped by resource.
func (s *Service) handleSamples(msg *message.Message) error {
	d := s.decoders.Get().(*samples.Decoder)
	// The decoder's memory backs the batch until it is encoded again.
	defer s.decoders.Put(d)
	in, err := d.Decode(msg.Payload)
	if err != nil {
		s.metrics.undecodable.WithLabelValues(contract.TopicSamples).Inc()
		return bus.Permanent(err)
	}
	snap := s.snap.Load()
	rec := s.recordOf(msg)
	if rec.tenant == "" {
		rec.tenant = in.Tenant
	}
	if rec.tenant == "" {
		rec.tenant = contract.DefaultTenant
	}
	var st stats
	outs := snap.finish(labelled(in.Series, rec), rec, in.Source, &st, nil)
	if err := s.publish(msg, outs); err != nil {
		return err
	}
	s.count(inputSamples, outs, st)
	return nil
}

// recordOf reads the headers of a consumed record. The tenant header is
// set by the authenticating ingest (monitor, bridge), so it wins over
// anything in the payload.
func (s *Service) recordOf(msg *message.Message) record {
	return record{
		tenant:    msg.Metadata.Get(contract.HeaderTenant),
		source:    msg.Metadata.Get(contract.HeaderSource),
		mqttTopic: msg.Metadata.Get(HeaderMQTTTopic),
	}
}

// publish encodes the batches into one buffer and publishes them to
// topic-metrics in one call, keyed by tenant and resource, with the
// record's received-at.
func (s *Service) publish(in *message.Message, outs []out) error {
	if len(outs) == 0 {
		return nil
	}
	size := 0
	for i := range outs {
		size += samples.EncodedLen(&outs[i].batch)
	}
	// One allocation for every payload; a publisher may keep them after
	// Publish returns, so nothing else ever writes to this buffer.
	buf := make([]byte, 0, size)
	receivedAt := in.Metadata.Get(contract.HeaderReceivedAt)
	msgs := make([]*message.Message, len(outs))
	for i := range outs {
		off := len(buf)
		buf = samples.Encode(buf, &outs[i].batch)
		// An empty UUID: the Kafka adapter then adds no UUID header, so
		// consumers see only the contract's headers.
		m := message.NewMessage("", buf[off:len(buf):len(buf)])
		m.Metadata[contract.HeaderTenant] = outs[i].batch.Tenant
		if receivedAt != "" {
			m.Metadata[contract.HeaderReceivedAt] = receivedAt
		}
		bus.SetKey(m, outs[i].key)
		m.SetContext(in.Context())
		msgs[i] = m
	}
	// In the input partition's order, without waiting for the previous
	// record's acknowledgement.
	if err := bus.PublishInTurn(in.Context(), s.pub, contract.TopicMetrics, msgs...); err != nil {
		return fmt.Errorf("publish to %s: %w", contract.TopicMetrics, err)
	}
	return nil
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
