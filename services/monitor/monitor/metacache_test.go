package monitor

import (
	"testing"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// TestRemoteWriteMetadataApart: Prometheus sends 1.0 metadata in requests
// of their own; the series of later requests of the same tenant carry it,
// other tenants' do not.
func TestRemoteWriteMetadataApart(t *testing.T) {
	pub := &fakePublisher{}
	h := start(t, testConfig(), Options{Publisher: pub})
	write := func(user, pass string, req *prompb.WriteRequest) {
		t.Helper()
		requireAnswer(t, h.prom(t, promRequest{path: RemoteWritePath, body: encodeV1(t, req), user: user, pass: pass}), 204, nil, "")
	}
	write("1", "probe-one-secret", &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_HISTOGRAM, MetricFamilyName: "latency_seconds", Help: "Latency.", Unit: "seconds"},
	}})
	require.Empty(t, pub.published(), "metadata alone publishes nothing")

	series := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		{Labels: lbls("__name__", "latency_seconds_bucket", "le", "0.5"), Samples: []prompb.Sample{{Value: 3, Timestamp: 1}}},
		{Labels: lbls("__name__", "other"), Samples: []prompb.Sample{{Value: 1, Timestamp: 1}}},
	}}
	write("1", "probe-one-secret", series)
	write("2", "probe-two-secret", series)
	batches, _, _ := decodeRecords(t, pub.published())
	var got []*samples.Metadata
	for _, b := range batches {
		for _, s := range b.Series {
			got = append(got, s.Metadata)
		}
	}
	want := &samples.Metadata{Type: samples.Histogram, Help: "Latency.", Unit: "seconds"}
	require.Equal(t, []*samples.Metadata{want, nil, nil, nil}, got)
}

func TestMetadataCacheBound(t *testing.T) {
	var c metadataCache
	fams := map[string]*samples.Metadata{}
	for i := range maxCachedFamilies + 10 {
		fams["f"+itoa(i)] = &samples.Metadata{Type: samples.Gauge}
	}
	c.update("t", fams)
	require.Len(t, c.byTenant["t"], maxCachedFamilies)
	// Known families are still updated when full.
	var known string
	for k := range c.byTenant["t"] {
		known = k
		break
	}
	c.update("t", map[string]*samples.Metadata{known: {Type: samples.Counter}, "new": {Type: samples.Counter}})
	require.Equal(t, samples.Counter, c.byTenant["t"][known].Type)
	require.NotContains(t, c.byTenant["t"], "new")
}
