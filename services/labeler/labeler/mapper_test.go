package labeler

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/registry"
	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/pkg/tma"
)

var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func testSnapshot(t *testing.T) *snapshot {
	t.Helper()
	s, err := loadSnapshot(filepath.Join("testdata", "registry.yaml"), testNow)
	require.NoError(t, err)
	return s
}

func ls(kv ...string) []samples.Label {
	out := make([]samples.Label, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, samples.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func obs(tv ...float64) []tma.Observation {
	out := make([]tma.Observation, 0, len(tv)/2)
	for i := 0; i+1 < len(tv); i += 2 {
		out = append(out, tma.Observation{Time: int64(tv[i]), Value: tv[i+1]})
	}
	return out
}

func smp(tv ...float64) []samples.Sample {
	out := make([]samples.Sample, 0, len(tv)/2)
	for i := 0; i+1 < len(tv); i += 2 {
		out = append(out, samples.Sample{TimestampMs: int64(tv[i]), Value: tv[i+1]})
	}
	return out
}

func meta(t samples.MetricType, unit, help string) *samples.Metadata {
	return &samples.Metadata{Type: t, Unit: unit, Help: help}
}

// Labels of series of resource 101098 from probe 1 (all known).
func known(name string, tenant string) []samples.Label {
	return ls("__name__", name, "owner", "ops", "probe", "k8s-probe", "resource", "worker-3",
		"resource_id", "101098", "resource_type", "node", "site", "lisbon", "tenant", tenant)
}

func TestMapTMA(t *testing.T) {
	snap := testSnapshot(t)
	for _, tc := range []struct {
		name      string
		msg       tma.Message
		rec       record
		want      []out
		wantStats stats
	}{
		{
			name: "known ids: names, units, kinds, extra labels, event",
			msg: tma.Message{ProbeID: 1, ResourceID: 101098, Data: []tma.Data{
				{DescriptionID: 27, Type: tma.Measurement, Observations: obs(1535971455, 20.5)},
				{DescriptionID: 28, Type: tma.Measurement, Observations: obs(1535971456001, 10, 1535971455000, 5)},
				{DescriptionID: 29, Type: tma.Event, Observations: obs(1535971455123456, 1)},
			}},
			rec: record{tenant: "acme"},
			want: []out{{key: samples.MetricsKey("acme", "resource_id=101098"), batch: samples.Batch{Tenant: "acme", Source: samples.SourceTMA, Series: []samples.Series{
				{Labels: known("cpu_usage_percent", "acme"), Samples: smp(1535971455000, 20.5), Metadata: meta(samples.Gauge, "percent", "CPU used, in percent of one core.")},
				{Labels: known("bytes_sent_bytes_total", "acme"), Samples: smp(1535971455000, 5, 1535971456001, 10), Metadata: meta(samples.Counter, "bytes", "")},
				{Labels: known("restart_event", "acme"), Samples: smp(1535971455123, 1), Metadata: meta(samples.Gauge, "", "")},
			}}}},
		},
		{
			name: "unknown ids flow under generic names with id labels",
			msg: tma.Message{ProbeID: 9, ResourceID: 5, Data: []tma.Data{
				{DescriptionID: 77, Type: tma.Measurement, Observations: obs(1700000000, 1, 1700000001, 2)},
				{DescriptionID: 78, Type: tma.Event, Observations: obs(1700000000, 3)},
			}},
			rec: record{tenant: "default"},
			want: []out{{key: samples.MetricsKey("default", "resource_id=5"), batch: samples.Batch{Tenant: "default", Source: samples.SourceTMA, Series: []samples.Series{
				{Labels: ls("__name__", "tma_measurement", "description_id", "77", "probe_id", "9", "resource_id", "5", "tenant", "default"), Samples: smp(1700000000000, 1, 1700000001000, 2)},
				{Labels: ls("__name__", "tma_event", "description_id", "78", "probe_id", "9", "resource_id", "5", "tenant", "default"), Samples: smp(1700000000000, 3)},
			}}}},
			wantStats: stats{unknownProbe: 3, unknownResource: 3, unknownDescription: 3},
		},
		{
			name: "known description on an unknown resource",
			msg: tma.Message{ProbeID: 1, ResourceID: 6, Data: []tma.Data{
				{DescriptionID: 27, Type: tma.Measurement, Observations: obs(1700000000, 1)},
			}},
			rec: record{tenant: "acme"},
			want: []out{{key: samples.MetricsKey("acme", "resource_id=6"), batch: samples.Batch{Tenant: "acme", Source: samples.SourceTMA, Series: []samples.Series{
				{Labels: ls("__name__", "cpu_usage_percent", "probe", "k8s-probe", "resource_id", "6", "tenant", "acme"), Samples: smp(1700000000000, 1), Metadata: meta(samples.Gauge, "percent", "CPU used, in percent of one core.")},
			}}}},
			wantStats: stats{unknownResource: 1},
		},
		{
			name: "a measurement and an event of one description are two series",
			msg: tma.Message{ProbeID: 1, ResourceID: 101098, Data: []tma.Data{
				{DescriptionID: 27, Type: tma.Measurement, Observations: obs(1535971455, 20.5)},
				{DescriptionID: 27, Type: tma.Event, Observations: obs(1535971455, 10.5)},
				{DescriptionID: 29, Type: tma.Measurement, Observations: obs(1535971455, 3)},
			}},
			rec: record{tenant: "acme"},
			want: []out{{key: samples.MetricsKey("acme", "resource_id=101098"), batch: samples.Batch{Tenant: "acme", Source: samples.SourceTMA, Series: []samples.Series{
				{Labels: known("cpu_usage_percent", "acme"), Samples: smp(1535971455000, 20.5), Metadata: meta(samples.Gauge, "percent", "CPU used, in percent of one core.")},
				{Labels: known("cpu_usage_percent_event", "acme"), Samples: smp(1535971455000, 10.5), Metadata: meta(samples.Gauge, "percent", "CPU used, in percent of one core.")},
				{Labels: known("restart", "acme"), Samples: smp(1535971455000, 3), Metadata: meta(samples.Gauge, "", "")},
			}}}},
		},
		{
			name: "one description twice in a message is one series",
			msg: tma.Message{ProbeID: 9, ResourceID: 5, Data: []tma.Data{
				{DescriptionID: 77, Type: tma.Measurement, Observations: obs(1700000002, 2)},
				{DescriptionID: 77, Type: tma.Measurement, Observations: obs(1700000001, 1)},
			}},
			rec: record{tenant: "t"},
			want: []out{{key: samples.MetricsKey("t", "resource_id=5"), batch: samples.Batch{Tenant: "t", Source: samples.SourceTMA, Series: []samples.Series{
				{Labels: ls("__name__", "tma_measurement", "description_id", "77", "probe_id", "9", "resource_id", "5", "tenant", "t"), Samples: smp(1700000001000, 1, 1700000002000, 2)},
			}}}},
			wantStats: stats{unknownProbe: 2, unknownResource: 2, unknownDescription: 2},
		},
		{
			name: "mqtt topic rules override the resource's site",
			msg: tma.Message{ProbeID: 1, ResourceID: 101098, Data: []tma.Data{
				{DescriptionID: 27, Type: tma.Measurement, Observations: obs(1700000000, 1)},
			}},
			rec: record{tenant: "acme", source: "mqtt", mqttTopic: "plant/porto/dev7/tma"},
			want: []out{{key: samples.MetricsKey("acme", "resource_id=101098"), batch: samples.Batch{Tenant: "acme", Source: samples.SourceTMA, Series: []samples.Series{
				{Labels: ls("__name__", "cpu_usage_percent", "device", "dev7", "owner", "ops", "probe", "k8s-probe", "resource", "worker-3",
					"resource_id", "101098", "resource_type", "node", "site", "porto", "tenant", "acme"),
					Samples: smp(1700000000000, 1), Metadata: meta(samples.Gauge, "percent", "CPU used, in percent of one core.")},
			}}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st stats
			series := snap.mapTMA(&tc.msg, tc.rec, &st)
			got := snap.finish(series, tc.rec, samples.SourceTMA, &st, snap.resources[tc.msg.ResourceID])
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.wantStats, st)
		})
	}
}

func TestMapLabelled(t *testing.T) {
	snap := testSnapshot(t)
	noRules, err := newSnapshot(&registry.File{})
	require.NoError(t, err)
	gauge := meta(samples.Gauge, "celsius", "Temperature.")
	for _, tc := range []struct {
		name      string
		snap      *snapshot
		in        []samples.Series
		rec       record
		want      []out
		wantStats stats
	}{
		{
			name: "mqtt topic to labels",
			snap: snap,
			in:   []samples.Series{{Labels: ls("__name__", "temp_celsius", "instance", "dev7"), Samples: smp(1, 21.5), Metadata: gauge}},
			rec:  record{tenant: "acme", source: "mqtt", mqttTopic: "plant/porto/dev7/temp"},
			want: []out{{key: samples.MetricsKey("acme", "instance=dev7"), batch: samples.Batch{Tenant: "acme", Source: samples.SourceMQTT, Series: []samples.Series{
				{Labels: ls("__name__", "temp_celsius", "device", "dev7", "instance", "dev7", "site", "porto", "tenant", "acme"), Samples: smp(1, 21.5), Metadata: gauge},
			}}}},
		},
		{
			name: "topic not matching leaves labels",
			snap: snap,
			in:   []samples.Series{{Labels: ls("__name__", "temp_celsius", "instance", "dev7", "site", "lab"), Samples: smp(1, 21.5)}},
			rec:  record{tenant: "acme", mqttTopic: "factory/x"},
			want: []out{{key: samples.MetricsKey("acme", "instance=dev7"), batch: samples.Batch{Tenant: "acme", Source: samples.SourceMQTT, Series: []samples.Series{
				{Labels: ls("__name__", "temp_celsius", "instance", "dev7", "site", "lab", "tenant", "acme"), Samples: smp(1, 21.5)},
			}}}},
		},
		{
			name: "drop rule and invalid series are counted",
			snap: snap,
			in: []samples.Series{
				{Labels: ls("__name__", "debug_heap", "instance", "a"), Samples: smp(1, 1)},
				{Labels: ls("instance", "a"), Samples: smp(1, 1)},
				{Labels: ls("__name__", "up", "instance", "a"), Samples: smp(1, 1)},
			},
			rec: record{tenant: "acme"},
			want: []out{{key: samples.MetricsKey("acme", "instance=a"), batch: samples.Batch{Tenant: "acme", Source: samples.SourceMQTT, Series: []samples.Series{
				{Labels: ls("__name__", "up", "instance", "a", "tenant", "acme"), Samples: smp(1, 1)},
			}}}},
			wantStats: stats{droppedByRule: 1, droppedInvalid: 1},
		},
		{
			name: "a sender cannot pick its tenant",
			snap: noRules,
			in: []samples.Series{
				{Labels: ls("__name__", "up", "job", "j", "tenant", "evil"), Samples: smp(1, 1)},
				{Labels: ls("__name__", "up", "job", "k", "tenant", "acme"), Samples: smp(1, 1)},
			},
			rec: record{tenant: "acme"},
			want: []out{
				{key: samples.MetricsKey("acme", "job=j"), batch: samples.Batch{Tenant: "acme", Source: samples.SourceMQTT, Series: []samples.Series{
					{Labels: ls("__name__", "up", "exported_tenant", "evil", "job", "j", "tenant", "acme"), Samples: smp(1, 1)},
				}}},
				{key: samples.MetricsKey("acme", "job=k"), batch: samples.Batch{Tenant: "acme", Source: samples.SourceMQTT, Series: []samples.Series{
					{Labels: ls("__name__", "up", "job", "k", "tenant", "acme"), Samples: smp(1, 1)},
				}}},
			},
		},
		{
			name: "grouped by resource: resource_id, resource, instance, job, name",
			snap: noRules,
			in: []samples.Series{
				{Labels: ls("__name__", "a", "instance", "i", "resource_id", "7"), Samples: smp(1, 1)},
				{Labels: ls("__name__", "b", "resource", "r", "instance", "i"), Samples: smp(1, 1)},
				{Labels: ls("__name__", "c", "resource_id", "7"), Samples: smp(2, 2)},
				{Labels: ls("__name__", "d"), Samples: smp(1, 1)},
				{Labels: ls("__name__", "e", "instance", "i", "job", "j"), Samples: smp(1, 1)},
			},
			rec: record{tenant: "t"},
			want: []out{
				{key: samples.MetricsKey("t", "resource_id=7"), batch: samples.Batch{Tenant: "t", Source: samples.SourceMQTT, Series: []samples.Series{
					{Labels: ls("__name__", "a", "instance", "i", "resource_id", "7", "tenant", "t"), Samples: smp(1, 1)},
					{Labels: ls("__name__", "c", "resource_id", "7", "tenant", "t"), Samples: smp(2, 2)},
				}}},
				{key: samples.MetricsKey("t", "resource=r"), batch: samples.Batch{Tenant: "t", Source: samples.SourceMQTT, Series: []samples.Series{
					{Labels: ls("__name__", "b", "instance", "i", "resource", "r", "tenant", "t"), Samples: smp(1, 1)},
				}}},
				{key: samples.MetricsKey("t", "__name__=d"), batch: samples.Batch{Tenant: "t", Source: samples.SourceMQTT, Series: []samples.Series{
					{Labels: ls("__name__", "d", "tenant", "t"), Samples: smp(1, 1)},
				}}},
				{key: samples.MetricsKey("t", "instance=i"), batch: samples.Batch{Tenant: "t", Source: samples.SourceMQTT, Series: []samples.Series{
					{Labels: ls("__name__", "e", "instance", "i", "job", "j", "tenant", "t"), Samples: smp(1, 1)},
				}}},
			},
		},
		{
			name:      "no rules: invalid series still counted",
			snap:      noRules,
			in:        []samples.Series{{Labels: ls("__name__", "", "x", "y"), Samples: smp(1, 1)}, {Labels: ls("__name__", "a", "x", "1", "x", "2")}},
			rec:       record{tenant: "t"},
			wantStats: stats{droppedInvalid: 2},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st stats
			got := tc.snap.finish(labelled(tc.in, tc.rec), tc.rec, samples.SourceMQTT, &st, nil)
			require.Equal(t, tc.want, got)
			require.Equal(t, tc.wantStats, st)
		})
	}
}

// Rules the registry parser accepts compile with Prometheus's relabel
// package, and its errors come back located at the rule.
func TestCompileRules(t *testing.T) {
	f, err := registry.Load(filepath.Join("testdata", "registry.yaml"))
	require.NoError(t, err)
	s, err := newSnapshot(f)
	require.NoError(t, err)
	require.Len(t, s.rules, len(f.LabelRules))

	bad := &registry.File{LabelRules: []registry.LabelRule{{Separator: ";", Regex: "(.*)", Replacement: "$1", Action: "replace",
		File: "r.yaml", Line: 3, Column: 5, Field: "label_rules[0]"}}}
	_, err = newSnapshot(bad)
	require.EqualError(t, err, "r.yaml:3:5: label_rules[0]: relabel configuration for replace action requires 'target_label' value")
}

// BenchmarkTMARecord is the labeler's work on one topic-monitor record of
// 20 known descriptions with one observation each: decode, map, relabel
// (4 rules), encode.
func BenchmarkTMARecord(b *testing.B) {
	s, err := loadSnapshot(filepath.Join("testdata", "registry.yaml"), testNow)
	require.NoError(b, err)
	benchTMA(b, s)
}

// BenchmarkTMARecordNoRules is the same without label rules.
func BenchmarkTMARecordNoRules(b *testing.B) {
	f, err := registry.Load(filepath.Join("testdata", "registry.yaml"))
	require.NoError(b, err)
	f.LabelRules = nil
	s, err := newSnapshot(f)
	require.NoError(b, err)
	benchTMA(b, s)
}

func benchTMA(b *testing.B, s *snapshot) {
	// 20 descriptions: the registry's three, then unknown ones.
	body := []byte(`{"probeId":1,"resourceId":101098,"messageId":1,"sentTime":1700000000,"data":[`)
	for i := range 20 {
		if i > 0 {
			body = append(body, ',')
		}
		body = fmt.Appendf(body, `{"descriptionId":%d,"type":"measurement","observations":[{"time":1700000000123,"value":%d.5}]}`, 27+i, i)
	}
	body = append(body, "]}"...)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		msgs, err := tma.Decode(body)
		if err != nil {
			b.Fatal(err)
		}
		var st stats
		rec := record{tenant: "acme"}
		outs := s.finish(s.mapTMA(&msgs[0], rec, &st), rec, samples.SourceTMA, &st, s.resources[101098])
		buf = samples.Encode(buf[:0], &outs[0].batch)
	}
}
