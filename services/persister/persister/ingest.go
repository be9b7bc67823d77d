package persister

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Handler names; the router uses them as the stage header of dead letters.
const (
	StageTSDB        = "persister"
	StageRemoteWrite = "persister-remote-write"
)

var errNoTenant = errors.New("sample batch has no tenant")

// maxErrorHeader bounds the error header of a dead letter, as the router
// does.
const maxErrorHeader = 1024

// decoderPool reuses Avro decoders across concurrent handlers.
type decoderPool struct {
	p sync.Pool
	// encodeLabels makes the decoders keep the labels' encodings.
	encodeLabels bool
}

func (d *decoderPool) get() *samples.Decoder {
	if v, ok := d.p.Get().(*samples.Decoder); ok {
		return v
	}
	return &samples.Decoder{EncodeLabels: d.encodeLabels}
}

func (d *decoderPool) put(dec *samples.Decoder) { d.p.Put(dec) }

// ingested is a decoded topic-metrics record of a batch.
type ingested struct {
	i       int // in the batch
	msg     *message.Message
	b       *samples.Batch
	encoded []string
}

// handleMetrics appends the sample batches of a batch of topic-metrics
// records to the TSDB, in their order, sharing commits. A record is done
// (and its offset committed) only after the TSDB commit and after the
// samples the TSDB refused are in topic-dlq. An undecodable record is a
// permanent error of its own, dead-lettered whole; a failed commit is
// retried (appendUntilCommitted), a failed dead-letter publish retries its
// record, which is safe because appending the same samples again stores
// nothing new.
func (s *Service) handleMetrics(ctx context.Context, msgs []*message.Message) []error {
	var errs []error
	items := make([]ingested, 0, len(msgs))
	for i, msg := range msgs {
		d := s.decoders.get()
		// The decoder's memory backs the batch until its rejected samples
		// are dead-lettered.
		defer s.decoders.put(d)
		b, err := d.Decode(msg.Payload)
		switch {
		case err != nil:
			errs = bus.Fail(errs, len(msgs), i, bus.Permanent(err))
			continue
		case b.Tenant == "":
			errs = bus.Fail(errs, len(msgs), i, bus.Permanent(errNoTenant))
			continue
		}
		if h := msg.Metadata.Get(contract.HeaderTenant); h != "" && h != b.Tenant {
			errs = bus.Fail(errs, len(msgs), i, bus.Permanent(fmt.Errorf("tenant header %q differs from the batch tenant %q", h, b.Tenant)))
			continue
		}
		items = append(items, ingested{i: i, msg: msg, b: b, encoded: d.EncodedLabels()})
	}
	if len(items) == 0 {
		return errs
	}
	start := s.now()
	results, err := s.appendUntilCommitted(ctx, items)
	if err != nil {
		for _, it := range items {
			errs = bus.Fail(errs, len(msgs), it.i, err)
		}
		return errs
	}
	s.ingest.append.Observe(s.now().Sub(start).Seconds())
	for k, it := range items {
		res := &results[k]
		s.meta.update(it.b)
		if len(res.rejected) > 0 {
			if err := s.deadLetterRejected(it.msg, res); err != nil {
				errs = bus.Fail(errs, len(msgs), it.i, err)
				continue
			}
		}
		s.ingest.batches.Inc()
		s.ingest.samples[outcomeAppended].Add(float64(res.appended))
		s.ingest.samples[outcomeStored].Add(float64(res.stored))
		s.ingest.samples[outcomeRejected].Add(float64(res.rejectedCount()))
		s.lag.observe(it.msg.Context())
	}
	if lag, ok := s.lag.total(); ok {
		s.ingest.lag.Set(float64(lag))
	}
	return errs
}

// appendUntilCommitted appends the batches of items in order and waits for
// their commits, appending them all again with backoff after a failed
// commit until it succeeds or ctx ends (shutdown: the records come again).
// A failing disk is no fault of the data: dead-lettering would empty the
// topic into topic-dlq, so the partition waits instead, and /metrics shows
// the failures.
func (s *Service) appendUntilCommitted(ctx context.Context, items []ingested) ([]appendResult, error) {
	delay := s.cfg.Bus.InitialInterval
	pending := make([]*pendingAppend, len(items))
	results := make([]appendResult, len(items))
	for attempt := 1; ; attempt++ {
		for k := range items {
			pending[k] = s.store.appendAsync(ctx, items[k].b, items[k].encoded)
		}
		var err error
		for k, p := range pending {
			if results[k], err = p.wait(ctx); err != nil {
				break
			}
		}
		if err == nil {
			return results, nil
		}
		s.ingest.commitErrors.Inc()
		s.logger.Error("append to tsdb failed, retrying", "attempt", attempt, "delay", delay, "err", err)
		if !service.Sleep(ctx, delay) {
			return nil, fmt.Errorf("append to tsdb: %w", errors.Join(err, ctx.Err()))
		}
		delay = min(2*delay, s.cfg.Bus.MaxInterval)
	}
}

// deadLetterRejected publishes the refused samples to topic-dlq, one
// record per reason holding a batch of just those samples (so it can be
// inspected or replayed as is), with the original key and headers plus
// error, source-topic and stage.
func (s *Service) deadLetterRejected(msg *message.Message, res *appendResult) error {
	reasons := make([]string, 0, len(res.rejected))
	for r := range res.rejected {
		reasons = append(reasons, r)
	}
	slices.Sort(reasons)
	source := message.SubscribeTopicFromCtx(msg.Context())
	if source == "" {
		source = contract.TopicMetrics
	}
	msgs := make([]*message.Message, 0, len(reasons))
	counts := make([]int, 0, len(reasons))
	for _, reason := range reasons {
		rb := res.rejected[reason]
		n := 0
		for _, ser := range rb.Series {
			n += len(ser.Samples)
		}
		dead := message.NewMessage(msg.UUID+"-"+reason, samples.Encode(nil, rb))
		for k, v := range msg.Metadata {
			dead.Metadata[k] = v
		}
		text := fmt.Sprintf("persister rejected %d samples (%s): %s", n, reason, res.reasons[reason])
		if len(text) > maxErrorHeader {
			text = strings.ToValidUTF8(text[:maxErrorHeader], "")
		}
		dead.Metadata.Set(contract.HeaderError, text)
		dead.Metadata.Set(contract.HeaderSourceTopic, source)
		dead.Metadata.Set(contract.HeaderStage, StageTSDB)
		dead.SetContext(msg.Context())
		msgs = append(msgs, dead)
		counts = append(counts, n)
	}
	if err := s.dlq.Publish(contract.TopicDLQ, msgs...); err != nil {
		return fmt.Errorf("publish to %s: %w", contract.TopicDLQ, err)
	}
	for i, reason := range reasons {
		s.ingest.rejected[reason].Add(float64(counts[i]))
		s.logger.Warn("samples rejected by the tsdb, dead-lettered", "reason", reason, "samples", counts[i], "tenant", res.rejected[reason].Tenant, "example", res.reasons[reason])
	}
	return nil
}
