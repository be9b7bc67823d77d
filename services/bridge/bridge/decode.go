package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/common/model"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/ingest"
	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/pkg/tma"
)

// Stage names the bridge in the stage header of its dead letters.
const Stage = "bridge"

// inbound is one MQTT message to store.
type inbound struct {
	tenant string
	topic  string
	// probeID is the authenticated probe's id, -1 without one: TMA
	// messages must then carry it.
	probeID  int64
	payload  []byte
	received time.Time
}

// decoded is what an inbound message becomes on the bus: records, or
// for topic-samples the series, which a batch may merge with other
// messages' into fewer records (see batcher).
type decoded struct {
	topic   string // bus topic
	records []*message.Message
	samples *sampleSet
}

// sampleSet is the series of messages of one tenant; mqttTopic is "" when
// they came on different topics.
type sampleSet struct {
	tenant     string
	mqttTopic  string
	receivedAt int64 // unix ns
	series     []samples.Series
}

// sampleDecoded is a decoded message of series for topic-samples.
func sampleDecoded(in inbound, series []samples.Series) decoded {
	return decoded{topic: contract.TopicSamples, samples: &sampleSet{
		tenant: in.tenant, mqttTopic: in.topic, receivedAt: in.received.UnixNano(), series: series,
	}}
}

// build returns the records of the series, with their MQTT topic when
// they have one.
func (s *sampleSet) build() []*message.Message {
	out := ingest.SampleRecords(s.tenant, contract.SourceMQTT, s.receivedAt, s.series)
	if s.mqttTopic != "" {
		for _, m := range out {
			m.Metadata[contract.HeaderMQTTTopic] = s.mqttTopic
		}
	}
	return out
}

// decode turns an inbound message into bus records by its route. An error
// means the payload can never be stored; the caller dead-letters it.
func decode(in inbound, r *Route, captures []samples.Label) (decoded, error) {
	nowMs := in.received.UnixMilli()
	var out decoded
	switch r.Format {
	case FormatTMA:
		msgs, err := tma.Decode(in.payload)
		if err != nil {
			return out, fmt.Errorf("decode tma: %w", err)
		}
		if in.probeID >= 0 {
			for i := range msgs {
				if msgs[i].ProbeID != in.probeID {
					return out, fmt.Errorf("message %d: probeId %d is not the authenticated probe %d", i, msgs[i].ProbeID, in.probeID)
				}
			}
		}
		out.topic = contract.TopicMonitor
		out.records = ingest.MonitorRecords(in.tenant, contract.SourceMQTT, in.received.UnixNano(), msgs)
	case FormatPrometheus, FormatOpenMetrics:
		f := ingest.FormatText
		if r.Format == FormatOpenMetrics {
			f = ingest.FormatOpenMetrics
		}
		series, _, _, err := ingest.ParseText(f, in.payload, nowMs, routeLabels(captures, r.labels))
		if err != nil {
			return out, err
		}
		if len(series) == 0 {
			return out, errors.New("no samples in the payload")
		}
		return sampleDecoded(in, series), nil
	case FormatNumber:
		s, err := numberSeries(in.payload, nowMs, r, captures)
		if err != nil {
			return out, err
		}
		return sampleDecoded(in, []samples.Series{s}), nil
	case FormatJSON:
		series, err := jsonSeries(in.payload, nowMs, r, captures)
		if err != nil {
			return out, err
		}
		return sampleDecoded(in, series), nil
	default:
		return out, fmt.Errorf("unknown format %q", r.Format)
	}
	for _, m := range out.records {
		m.Metadata[contract.HeaderMQTTTopic] = in.topic
	}
	return out, nil
}

// routeLabels merges topic captures and a route's labels, sorted.
func routeLabels(captures, labels []samples.Label) []samples.Label {
	out := make([]samples.Label, 0, len(captures)+len(labels))
	out = append(append(out, captures...), labels...)
	slices.SortFunc(out, func(a, b samples.Label) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// numberSeries reads a plain-number payload, stamped with the receive time.
func numberSeries(payload []byte, nowMs int64, r *Route, captures []samples.Label) (samples.Series, error) {
	v, err := parseNumber(string(bytes.TrimSpace(payload)))
	if err != nil {
		return samples.Series{}, err
	}
	ls := routeLabels(captures, r.labels)
	if r.Metric != "" {
		ls = routeLabels(ls, []samples.Label{{Name: model.MetricNameLabel, Value: r.Metric}})
	}
	typ, _ := metricType(r.Type) // checked by compile
	return series(ls, typ, "", nowMs, v)
}

func parseNumber(s string) (float64, error) {
	switch strings.ToLower(s) {
	case "true", "on":
		return 1, nil
	case "false", "off":
		return 0, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("payload %q is not a number", truncate(s, 64))
	}
	return v, nil
}

// series builds one checked series of one sample.
func series(ls []samples.Label, typ samples.MetricType, help string, nowMs int64, v float64) (samples.Series, error) {
	ls = ingest.DropEmpty(ls)
	if err := ingest.CheckLabels(ls); err != nil {
		return samples.Series{}, fmt.Errorf("series %s: %w", ingest.ShowLabels(ls), err)
	}
	return samples.Series{
		Labels:   ls,
		Samples:  []samples.Sample{{TimestampMs: nowMs, Value: v}},
		Metadata: &samples.Metadata{Type: typ, Help: help},
	}, nil
}

// jsonSeries reads the configured fields of a JSON object payload.
// Missing fields are skipped, as mqtt2prometheus does; a payload with none
// of them is an error.
func jsonSeries(payload []byte, nowMs int64, r *Route, captures []samples.Label) ([]samples.Series, error) {
	var doc map[string]any
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	if err := d.Decode(&doc); err != nil {
		return nil, fmt.Errorf("decode json: %w", err)
	}
	base := routeLabels(captures, r.labels)
	var out []samples.Series
	for _, jm := range r.Metrics {
		raw, ok := lookup(doc, jm.path)
		if !ok {
			continue
		}
		v, err := jsonNumber(raw)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", jm.MQTTName, err)
		}
		ls := routeLabels(base, jm.labels)
		ls = routeLabels(ls, []samples.Label{{Name: model.MetricNameLabel, Value: jm.PromName}})
		typ, _ := metricType(jm.Type)
		s, err := series(ls, typ, jm.Help, nowMs, v)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", jm.MQTTName, err)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errors.New("none of the configured fields is in the payload")
	}
	return out, nil
}

func lookup(doc map[string]any, path []string) (any, bool) {
	var cur any = doc
	for _, p := range path {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func jsonNumber(v any) (float64, error) {
	switch x := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%s is not a number", x)
		}
		return f, nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case string:
		return parseNumber(x)
	case nil:
		return 0, errors.New("null is not a number")
	}
	return 0, fmt.Errorf("a JSON %T is not a number", v)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
