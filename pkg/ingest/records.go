package ingest

import (
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/pkg/tma"
)

// MaxRecordBytes is the most a topic-samples record built from one request
// holds (well below the broker's default 1 MiB record limit); a series
// group larger than that is split into records with the same key, which
// the broker keeps in order.
const MaxRecordBytes = 256 << 10

// groupLabels are the labels that make a series' group, best first: the
// record key is tenant and group (samples.MetricsKey), so every sample of
// one series goes to one partition, in order.
var groupLabels = [...]string{"instance", "job", "__name__"}

// seriesGroup returns "<label>=<value>" of the first group label a series
// has ("" for none).
func seriesGroup(ls []samples.Label) string {
	best, value := len(groupLabels), ""
	for _, l := range ls {
		for i := 0; i < best; i++ {
			if l.Name == groupLabels[i] {
				best, value = i, l.Value
				break
			}
		}
	}
	if best == len(groupLabels) {
		return ""
	}
	return groupLabels[best] + "=" + value
}

// SampleRecords encodes series of one tenant into topic-samples records,
// one batch per series group (split at MaxRecordBytes), keyed by tenant
// and group, with the contract's headers. The payloads share one buffer
// of their own: a publisher may keep them after Publish returned.
func SampleRecords(tenant, source string, receivedAt int64, series []samples.Series) []*message.Message {
	type group struct {
		key    string
		series []samples.Series
	}
	var groups []group
	index := map[string]int{}
	for _, ser := range series {
		k := seriesGroup(ser.Labels)
		i, ok := index[k]
		if !ok {
			i = len(groups)
			index[k] = i
			groups = append(groups, group{key: k})
		}
		groups[i].series = append(groups[i].series, ser)
	}

	var batches []samples.Batch
	var keys []string
	size := 0
	for _, g := range groups {
		b := samples.Batch{Tenant: tenant, Source: source}
		bytes := samples.EncodedLen(&b)
		for i := range g.series {
			n := samples.EncodedLen(&samples.Batch{Series: g.series[i : i+1]})
			if len(b.Series) > 0 && bytes+n > MaxRecordBytes {
				batches, keys = append(batches, b), append(keys, g.key)
				size += bytes
				b = samples.Batch{Tenant: tenant, Source: source}
				bytes = samples.EncodedLen(&b)
			}
			b.Series = append(b.Series, g.series[i])
			bytes += n
		}
		batches, keys = append(batches, b), append(keys, g.key)
		size += bytes
	}

	buf := make([]byte, 0, size)
	at := strconv.FormatInt(receivedAt, 10)
	out := make([]*message.Message, len(batches))
	for i := range batches {
		off := len(buf)
		buf = samples.Encode(buf, &batches[i])
		// An empty UUID: the Kafka adapter then adds no UUID header, so
		// plain consumers see only the contract's headers.
		m := message.NewMessage("", buf[off:len(buf):len(buf)])
		m.Metadata[contract.HeaderTenant] = tenant
		m.Metadata[contract.HeaderSource] = source
		m.Metadata[contract.HeaderReceivedAt] = at
		bus.SetKey(m, samples.MetricsKey(tenant, keys[i]))
		out[i] = m
	}
	return out
}

// MonitorRecords builds the topic-monitor records of TMA messages of one
// tenant: the raw JSON of each message as its value, keyed by resourceId
// (8-byte big-endian, as TMA's Java consumers read keys), with the
// contract's headers. The payloads share one buffer of their own: a
// publisher may keep them after Publish returned (kafka-go does when it
// gives up at a timeout), so they must not alias a pooled request body.
func MonitorRecords(tenant, source string, receivedAt int64, msgs []tma.Message) []*message.Message {
	size := 0
	for i := range msgs {
		size += len(msgs[i].Raw)
	}
	payloads := make([]byte, 0, size)
	at := strconv.FormatInt(receivedAt, 10)
	out := make([]*message.Message, len(msgs))
	for i := range msgs {
		off := len(payloads)
		payloads = append(payloads, msgs[i].Raw...)
		// An empty UUID: the Kafka adapter then adds no UUID header, so
		// plain consumers see only the contract's headers.
		m := message.NewMessage("", payloads[off:len(payloads):len(payloads)])
		m.Metadata[contract.HeaderTenant] = tenant
		m.Metadata[contract.HeaderSource] = source
		m.Metadata[contract.HeaderReceivedAt] = at
		m.Metadata[contract.HeaderContentType] = contract.ContentTypeTMA
		bus.SetKey(m, contract.ResourceKey(msgs[i].ResourceID))
		out[i] = m
	}
	return out
}
