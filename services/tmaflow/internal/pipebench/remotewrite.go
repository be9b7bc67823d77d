package pipebench

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/tmaflow/tmaflow/services/tmaflow/internal/loadgen"
)

// group is the label sets of the series one TMA message of a resource
// makes: a "message-equivalent" is one sample of each at one timestamp.
type group [][]prompb.Label

// groupSeries groups label sets (as the query API lists them) by
// resource_id, each group's series and their labels in a stable order.
func groupSeries(sets []map[string]string) []group {
	byResource := map[string][]map[string]string{}
	for _, s := range sets {
		byResource[s["resource_id"]] = append(byResource[s["resource_id"]], s)
	}
	ids := make([]string, 0, len(byResource))
	for id := range byResource {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]group, 0, len(ids))
	for _, id := range ids {
		var g group
		for _, s := range byResource[id] {
			ls := make([]prompb.Label, 0, len(s))
			for k, v := range s {
				ls = append(ls, prompb.Label{Name: k, Value: v})
			}
			sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
			g = append(g, ls)
		}
		sort.Slice(g, func(i, j int) bool { return labelsKey(g[i]) < labelsKey(g[j]) })
		out = append(out, g)
	}
	return out
}

func labelsKey(ls []prompb.Label) string {
	var b []byte
	for _, l := range ls {
		b = append(b, l.Name...)
		b = append(b, 0)
		b = append(b, l.Value...)
		b = append(b, 0)
	}
	return string(b)
}

// writeConfig is a remote-write load: Writers closed-loop writers, each
// owning the groups at index w, w+Writers, …, sending requests of
// PerRequest message-equivalents, one sample per time series entry, as
// Prometheus's own remote write sends them.
type writeConfig struct {
	URL        string
	Groups     []group
	Writers    int
	PerRequest int
}

// remoteWrite sends until ctx ends.
func remoteWrite(ctx context.Context, cfg writeConfig, st *sendStats) {
	writers := min(cfg.Writers, len(cfg.Groups))
	client := &http.Client{Transport: loadgen.NewTransport(writers), Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	for _, own := range deal(cfg.Groups, writers) {
		wg.Go(func() { writeLoop(ctx, client, cfg, own, st) })
	}
	wg.Wait()
}

func writeLoop(ctx context.Context, client *http.Client, cfg writeConfig, own []group, st *sendStats) {
	clock := resourceClock{last: make([]int64, len(own))}
	var (
		req     prompb.WriteRequest
		raw     []byte
		encoded []byte
		smp     []prompb.Sample
	)
	next := 0
	for seq := int64(0); ctx.Err() == nil; seq++ {
		req.Timeseries = req.Timeseries[:0]
		smp = smp[:0]
		now := time.Now()
		for range cfg.PerRequest {
			g := own[next]
			ts := clock.next(next, now)
			for d, ls := range g {
				smp = append(smp, prompb.Sample{Timestamp: ts, Value: sampleValue(seq, d)})
				req.Timeseries = append(req.Timeseries, prompb.TimeSeries{Labels: ls})
			}
			next = (next + 1) % len(own)
		}
		// Each entry holds one sample; the slab is filled first so its
		// growth cannot move samples the entries point at.
		for i := range req.Timeseries {
			req.Timeseries[i].Samples = smp[i : i+1 : i+1]
		}
		size := req.Size()
		if cap(raw) < size {
			raw = make([]byte, size)
		}
		raw = raw[:size]
		if _, err := req.MarshalToSizedBuffer(raw); err != nil {
			st.fail(fmt.Errorf("marshal write request: %w", err))
			return
		}
		encoded = snappy.Encode(encoded[:cap(encoded)], raw)
		status, err := postWrite(ctx, client, cfg.URL, encoded)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			st.fail(err)
		case status/100 != 2:
			st.fail(fmt.Errorf("remote write answered %d", status))
		default:
			st.ok.Add(1)
		}
	}
}

func postWrite(ctx context.Context, client *http.Client, url string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("new request: %w", err)
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	return roundTrip(client, req)
}
