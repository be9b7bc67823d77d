package ruler

import (
	"context"
	"errors"
	"math"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/samples"
)

var errHistogramResult = errors.New("recording rule results that are native histograms are not supported")

// ruleAppendable takes the results of a group's recording rules: into the
// window (so dependent rules see them at once, and groups selecting them
// are triggered) and, on commit, to topic-samples as one batch with the
// tenant label set, so the labeler and persister store them.
type ruleAppendable struct {
	s *Service
	g *groupRunner
}

func (a ruleAppendable) Appender(ctx context.Context) storage.Appender {
	return &ruleAppender{ctx: ctx, s: a.s, g: a.g}
}

// ruleAppender opens a window appender only for the first result: the
// rules package asks for an appender per rule and evaluation, and most
// evaluations of alerting rules return nothing.
type ruleAppender struct {
	ctx    context.Context
	app    storage.Appender // nil until a result is appended
	opts   *storage.AppendOptions
	s      *Service
	g      *groupRunner
	series []samples.Series
	index  map[uint64]int
	lbls   []labels.Labels
}

func (a *ruleAppender) window() storage.Appender {
	if a.app == nil {
		a.app = a.s.win.Appender(a.ctx)
		if a.opts != nil {
			a.app.SetOptions(a.opts)
		}
	}
	return a.app
}

func (a *ruleAppender) SetOptions(opts *storage.AppendOptions) {
	a.opts = opts
	if a.app != nil {
		a.app.SetOptions(opts)
	}
}

func (a *ruleAppender) Append(_ storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	l = labels.NewBuilder(l).Set(TenantLabel, a.g.tenant).Labels()
	ref, err := a.window().Append(0, l, t, v)
	if err != nil {
		return ref, err
	}
	if a.index == nil {
		a.index = map[uint64]int{}
	}
	h := l.Hash()
	i, ok := a.index[h]
	if !ok {
		i = len(a.series)
		a.index[h] = i
		ser := samples.Series{Labels: make([]samples.Label, 0, l.Len())}
		l.Range(func(lb labels.Label) { ser.Labels = append(ser.Labels, samples.Label{Name: lb.Name, Value: lb.Value}) })
		a.series = append(a.series, ser)
		a.lbls = append(a.lbls, l)
	}
	a.series[i].Samples = append(a.series[i].Samples, samples.Sample{TimestampMs: t, Value: v})
	return ref, nil
}

func (a *ruleAppender) AppendHistogram(storage.SeriesRef, labels.Labels, int64, *histogram.Histogram, *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return 0, errHistogramResult
}

func (a *ruleAppender) AppendHistogramSTZeroSample(storage.SeriesRef, labels.Labels, int64, int64, *histogram.Histogram, *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return 0, errHistogramResult
}

// Rules write no exemplars, metadata or start timestamps.
func (a *ruleAppender) AppendExemplar(ref storage.SeriesRef, _ labels.Labels, _ exemplar.Exemplar) (storage.SeriesRef, error) {
	return ref, nil
}

func (a *ruleAppender) UpdateMetadata(ref storage.SeriesRef, _ labels.Labels, _ metadata.Metadata) (storage.SeriesRef, error) {
	return ref, nil
}

func (a *ruleAppender) AppendSTZeroSample(ref storage.SeriesRef, _ labels.Labels, _, _ int64) (storage.SeriesRef, error) {
	return ref, nil
}

func (a *ruleAppender) Rollback() error {
	if a.app == nil {
		return nil
	}
	return a.app.Rollback()
}

func (a *ruleAppender) Commit() error {
	if a.app == nil {
		return nil
	}
	if err := a.app.Commit(); err != nil {
		return err
	}
	if len(a.series) == 0 || a.g.quiet.Load() {
		return nil
	}
	b := &samples.Batch{Tenant: a.g.tenant, Source: samples.SourceRule, Series: a.series}
	msg := message.NewMessage("", samples.Encode(nil, b)) // no UUID header: the contract's headers only
	msg.Metadata.Set(contract.HeaderTenant, a.g.tenant)
	msg.Metadata.Set(contract.HeaderSource, samples.SourceRule)
	now := a.s.now()
	msg.Metadata.Set(contract.HeaderReceivedAt, itoa(now.UnixNano()))
	bus.SetKey(msg, samples.MetricsKey(a.g.tenant, a.g.name))
	a.s.out.send(contract.TopicSamples, msg)
	// Groups selecting the recorded series see them now (they come back
	// through topic-metrics too, but triggers no group from there).
	if a.g.evalHops+1 >= maxRuleHops {
		return nil
	}
	for i, l := range a.lbls {
		last := a.series[i].Samples[len(a.series[i].Samples)-1]
		if math.IsNaN(last.Value) && value.IsStaleNaN(last.Value) {
			continue
		}
		a.s.triggerSeries(a.g.tenant, l, 0, last.TimestampMs, a.g.evalHops+1, a.g)
	}
	return nil
}
