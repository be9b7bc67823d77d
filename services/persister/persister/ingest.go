package persister

import (
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

// handleMetrics appends one batch of topic-metrics to the TSDB. It returns
// nil (and the subscriber commits the offset) only after the TSDB commit
// and after the samples the TSDB refused are in topic-dlq. An undecodable
// record is a permanent error, dead-lettered whole by the router; a failed
// commit or dead-letter publish is retried, which is safe because
// appending the same samples again stores nothing new.
func (s *Service) handleMetrics(msg *message.Message) error {
	d := s.decoders.get()
	defer s.decoders.put(d)
	b, err := d.Decode(msg.Payload)
	if err != nil {
		return bus.Permanent(err)
	}
	if b.Tenant == "" {
		return bus.Permanent(errNoTenant)
	}
	if h := msg.Metadata.Get(contract.HeaderTenant); h != "" && h != b.Tenant {
		return bus.Permanent(fmt.Errorf("tenant header %q differs from the batch tenant %q", h, b.Tenant))
	}
	start := s.now()
	// Decoding overlaps; appends keep the partition's order, so the
	// samples of a series arrive in time order. The turn passes once the
	// samples are appended: the next record joins the same commit.
	release := bus.AwaitTurn(msg.Context())
	res, err := s.appendUntilCommitted(msg, b, d.EncodedLabels(), release)
	release()
	if err != nil {
		return err
	}
	s.ingest.append.Observe(s.now().Sub(start).Seconds())
	s.meta.update(b)
	if len(res.rejected) > 0 {
		if err := s.deadLetterRejected(msg, &res); err != nil {
			return err
		}
	}
	s.ingest.batches.Inc()
	s.ingest.samples[outcomeAppended].Add(float64(res.appended))
	s.ingest.samples[outcomeStored].Add(float64(res.stored))
	s.ingest.samples[outcomeRejected].Add(float64(res.rejectedCount()))
	s.lag.observe(msg.Context())
	if lag, ok := s.lag.total(); ok {
		s.ingest.lag.Set(float64(lag))
	}
	return nil
}

// appendUntilCommitted appends b, retrying a failed TSDB commit with
// backoff until it succeeds or the message context ends (shutdown,
// rebalance: the batch comes again). A failing disk is no fault of the
// data: dead-lettering would empty the topic into topic-dlq, so the
// partition waits instead, and /metrics shows the failures.
func (s *Service) appendUntilCommitted(msg *message.Message, b *samples.Batch, encoded []string, appended func()) (appendResult, error) {
	ctx := msg.Context()
	delay := s.cfg.Bus.InitialInterval
	for attempt := 1; ; attempt++ {
		res, err := s.store.appendThen(ctx, b, encoded, appended)
		if err == nil {
			return res, nil
		}
		s.ingest.commitErrors.Inc()
		s.logger.Error("append to tsdb failed, retrying", "attempt", attempt, "delay", delay, "err", err)
		if !service.Sleep(ctx, delay) {
			return appendResult{}, fmt.Errorf("append to tsdb: %w", errors.Join(err, ctx.Err()))
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
