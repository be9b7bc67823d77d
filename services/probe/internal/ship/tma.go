package ship

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/pkg/tma"
	"github.com/tmaflow/tmaflow/services/probe/internal/collect"
)

// TMAMapping maps series to a TMA description (and resource): a series
// matches when its metric name is Metric and it has every label of
// Labels.
type TMAMapping struct {
	Metric        string            `yaml:"metric"`
	Labels        map[string]string `yaml:"labels"`
	DescriptionID int64             `yaml:"description_id"`
	// ResourceID overrides the output's resource (nil: the output's).
	ResourceID *int64 `yaml:"resource_id"`
}

// TMAConfig is the TMA output: POST /monitor of tmaflow's monitor or the
// TMA framework's.
type TMAConfig struct {
	HTTPConfig `yaml:",inline"`
	ProbeID    int64 `yaml:"probe_id"`
	ResourceID int64 `yaml:"resource_id"`
	// Gzip compresses bodies (the TMA framework's monitor and tmaflow's
	// take plain JSON: off by default).
	Gzip     bool         `yaml:"gzip"`
	Mappings []TMAMapping `yaml:"mappings"`
}

// Validate checks the configuration.
func (c TMAConfig) Validate() error {
	errs := []error{c.HTTPConfig.Validate()}
	if c.ProbeID < 0 || c.ResourceID < 0 {
		errs = append(errs, errors.New("probe_id and resource_id must be ≥ 0"))
	}
	if len(c.Mappings) == 0 {
		errs = append(errs, errors.New("mappings: at least one series → description_id mapping is required"))
	}
	for i, m := range c.Mappings {
		if m.Metric == "" || m.DescriptionID < 0 || (m.ResourceID != nil && *m.ResourceID < 0) {
			errs = append(errs, fmt.Errorf("mappings[%d]: want a metric and ids ≥ 0", i))
		}
	}
	return errors.Join(errs...)
}

// TMA posts TMA monitoring messages: one per resource and batch, one
// data item per description, the samples as observations. Series that
// no mapping matches are not part of this output and are counted.
type TMA struct {
	cfg      TMAConfig
	post     *httpPoster
	unmapped prometheus.Counter
	now      func() time.Time
}

// NewTMA builds the output; unmapped counts the series' samples that no
// mapping matched; now stamps sentTime (nil: time.Now).
func NewTMA(cfg TMAConfig, unmapped prometheus.Counter, now func() time.Time) (*TMA, error) {
	if now == nil {
		now = time.Now
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p, err := newHTTPPoster(cfg.HTTPConfig)
	if err != nil {
		return nil, err
	}
	return &TMA{cfg: cfg, post: p, unmapped: unmapped, now: now}, nil
}

func (o *TMA) match(s samples.Series) (TMAMapping, bool) {
	name := collect.MetricName(s.Labels)
	for _, m := range o.cfg.Mappings {
		if m.Metric != name {
			continue
		}
		ok := true
		for k, v := range m.Labels {
			if !slices.Contains(s.Labels, samples.Label{Name: k, Value: v}) {
				ok = false
				break
			}
		}
		if ok {
			return m, true
		}
	}
	return TMAMapping{}, false
}

// Messages builds the batch's messages. messageId is first (the batch's
// first queue seq) times 1000 plus the message's index, so a resent
// batch carries the same ids.
func (o *TMA) Messages(first uint64, series []samples.Series, sentMs int64) []tma.Message {
	type key struct{ resource, description int64 }
	obs := map[key][]tma.Observation{}
	var keys []key
	for _, s := range series {
		m, ok := o.match(s)
		if !ok {
			o.unmapped.Add(float64(len(s.Samples)))
			continue
		}
		k := key{resource: o.cfg.ResourceID, description: m.DescriptionID}
		if m.ResourceID != nil {
			k.resource = *m.ResourceID
		}
		if _, seen := obs[k]; !seen {
			keys = append(keys, k)
		}
		for _, smp := range s.Samples {
			obs[k] = append(obs[k], tma.Observation{Time: smp.TimestampMs, Value: smp.Value})
		}
	}
	var msgs []tma.Message
	byResource := map[int64]int{}
	for _, k := range keys {
		i, ok := byResource[k.resource]
		if !ok {
			i = len(msgs)
			byResource[k.resource] = i
			msgs = append(msgs, tma.Message{
				ProbeID: o.cfg.ProbeID, ResourceID: k.resource,
				MessageID: int64(first)*1000 + int64(i), SentTime: sentMs,
			})
		}
		ob := obs[k]
		slices.SortStableFunc(ob, func(a, b tma.Observation) int { return cmp.Compare(a.Time, b.Time) })
		msgs[i].Data = append(msgs[i].Data, tma.Data{DescriptionID: k.description, Type: tma.Measurement, Observations: ob})
	}
	return msgs
}

// Send posts the batch as a JSON array of messages.
func (o *TMA) Send(ctx context.Context, first uint64, series []samples.Series) error {
	msgs := o.Messages(first, series, o.now().UnixMilli())
	if len(msgs) == 0 {
		return ErrNothingToSend
	}
	body, err := json.Marshal(msgs)
	if err != nil {
		// NaN and ±Inf have no JSON form: the TMA schema cannot carry them.
		return &PermanentError{Err: fmt.Errorf("encode tma messages: %w", err)}
	}
	headers := map[string]string{"Content-Type": "application/json"}
	if o.cfg.Gzip {
		body = gzipBytes(body)
		headers["Content-Encoding"] = "gzip"
	}
	return o.post.post(ctx, body, headers)
}
