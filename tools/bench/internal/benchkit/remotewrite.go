package benchkit

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/tmaflow/tmaflow/tools/bench/internal/loadgen"
)

// Group is the label sets of the series one TMA message of a resource
// makes: a "message-equivalent" is one sample of each at one timestamp.
type Group [][]prompb.Label

// GroupSeries groups label sets (as the query API lists them) by
// resource_id, each group's series and their labels in a stable order.
func GroupSeries(sets []map[string]string) []Group {
	byResource := map[string][]map[string]string{}
	for _, s := range sets {
		byResource[s["resource_id"]] = append(byResource[s["resource_id"]], s)
	}
	ids := make([]string, 0, len(byResource))
	for id := range byResource {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]Group, 0, len(ids))
	for _, id := range ids {
		var g Group
		for _, s := range byResource[id] {
			ls := make([]prompb.Label, 0, len(s))
			for k, v := range s {
				ls = append(ls, prompb.Label{Name: k, Value: v})
			}
			sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
			g = append(g, ls)
		}
		sort.Slice(g, func(i, j int) bool { return LabelsKey(g[i]) < LabelsKey(g[j]) })
		out = append(out, g)
	}
	return out
}

// LabelsKey is a label set as a map key.
func LabelsKey(ls []prompb.Label) string {
	var b []byte
	for _, l := range ls {
		b = append(b, l.Name...)
		b = append(b, 0)
		b = append(b, l.Value...)
		b = append(b, 0)
	}
	return string(b)
}

// WriteConfig is a remote-write load: Writers writers, each owning the
// groups at index w, w+Writers, …, sending requests of PerRequest
// message-equivalents, one sample per time series entry, as Prometheus's
// own remote write sends them.
type WriteConfig struct {
	URL        string
	Groups     []Group
	Writers    int
	PerRequest int
	// Rate in message-equivalents/s, open loop as SendConfig's; 0 writes
	// as fast as the answers come (closed loop).
	Rate float64
	// Value is the sample of series d of message-equivalent seq; nil:
	// SampleValue.
	Value ValueFunc
}

// RemoteWrite sends until ctx ends.
func RemoteWrite(ctx context.Context, cfg WriteConfig, st *SendStats) {
	runWorkers(cfg.Groups, cfg.Writers, cfg.PerRequest, cfg.Rate,
		func(client loadgen.Doer, own []Group, start time.Time, interval time.Duration) {
			writeLoop(ctx, client, cfg, own, start, interval, st)
		})
}

func writeLoop(ctx context.Context, client loadgen.Doer, cfg WriteConfig, own []Group, start time.Time, interval time.Duration, st *SendStats) {
	value := cfg.Value
	if value == nil {
		value = SampleValue
	}
	clock := NewResourceClock(len(own))
	var (
		req prompb.WriteRequest
		enc WriteEncoder
		smp []prompb.Sample
	)
	next := 0
	for seq := int64(0); awaitSlot(ctx, start, seq, interval); seq++ {
		req.Timeseries = req.Timeseries[:0]
		smp = smp[:0]
		now := time.Now()
		for range cfg.PerRequest {
			g := own[next]
			ts := clock.Next(next, now)
			for d, ls := range g {
				smp = append(smp, prompb.Sample{Timestamp: ts, Value: value(seq, d)})
				req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: ls})
			}
			next = (next + 1) % len(own)
		}
		// Each entry holds one sample; the slab is filled first so its
		// growth cannot move samples the entries point at.
		for i := range req.Timeseries {
			req.Timeseries[i].Samples = smp[i : i+1 : i+1]
		}
		body, err := enc.Encode(&req)
		if err != nil {
			st.Fail(err)
			return
		}
		status, err := PostWrite(ctx, client, cfg.URL, body)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			st.Fail(err)
		case status/100 != 2:
			st.Fail(fmt.Errorf("remote write answered %d", status))
		default:
			st.OK.Add(1)
		}
	}
}

// WriteEncoder makes remote-write bodies, reusing its buffers.
type WriteEncoder struct {
	raw, out []byte
}

// Encode marshals req and snappy-compresses it; the result is valid
// until the next call.
func (e *WriteEncoder) Encode(req *prompb.WriteRequest) ([]byte, error) {
	size := req.Size()
	if cap(e.raw) < size {
		e.raw = make([]byte, size)
	}
	e.raw = e.raw[:size]
	if _, err := req.MarshalToSizedBuffer(e.raw); err != nil {
		return nil, fmt.Errorf("marshal write request: %w", err)
	}
	e.out = snappy.Encode(e.out[:cap(e.out)], e.raw)
	return e.out, nil
}

// PostWrite posts one encoded remote-write request.
func PostWrite(ctx context.Context, client loadgen.Doer, url string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	return loadgen.RoundTrip(client, req)
}
