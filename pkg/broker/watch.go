package broker

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Option configures Start.
type Option func(*options)

type options struct {
	reg prometheus.Registerer
}

// Metrics registers the broker's metrics on reg.
func Metrics(reg prometheus.Registerer) Option {
	return func(o *options) { o.reg = reg }
}

// metrics are the broker's: what its topics hold, and what retention
// deleted before a consumer group read it.
type metrics struct {
	bytes      *prometheus.GaugeVec
	records    *prometheus.GaugeVec
	unconsumed *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		bytes: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tmaflow_broker_topic_bytes",
			Help: "Bytes of record batches the embedded broker holds, by topic (what retention-bytes limits per partition).",
		}, []string{"topic"}),
		records: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tmaflow_broker_topic_records",
			Help: "Records the embedded broker holds, by topic: the partitions' high watermarks less their log start offsets.",
		}, []string{"topic"}),
		unconsumed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_broker_retention_unconsumed_records_total",
			Help: "Records retention deleted before a consumer group that reads the topic had committed past them: data lost to a consumer that fell further behind than the retention.",
		}, []string{"topic", "group"}),
	}
}

// retentionWatch remembers each partition's log start, so that what
// retention deleted since the last look can be compared with the consumer
// groups' commits.
type retentionWatch struct {
	logStart map[string]map[int32]int64 // topic → partition → log start
}

// look records the topics' sizes and counts the records retention deleted
// before a group committed past them; the broker's own retention passes
// included, since it compares log starts with the last look. The groups'
// commits are asked for only when a log start moved. Runs under b.mu, or
// in Start before anything else can.
func (b *Broker) look() {
	if b.watch.logStart == nil {
		b.watch.logStart = map[string]map[int32]int64{}
	}
	var groups map[string]map[string]map[int32]int64
	for _, topic := range Topics() {
		var bytes, records int64
		prev := b.watch.logStart[topic]
		now := map[int32]int64{}
		for _, p := range b.cluster.PartitionInfos(topic) {
			bytes += p.NumBytes
			records += p.HighWatermark - p.LogStartOffset
			now[p.Partition] = p.LogStartOffset
			from, seen := prev[p.Partition]
			if !seen || p.LogStartOffset <= from {
				continue
			}
			if groups == nil {
				groups = b.groupCommits()
			}
			for group, commits := range groups {
				committed, ok := commits[topic][p.Partition]
				if !ok {
					continue
				}
				lost := p.LogStartOffset - max(committed, from)
				if lost <= 0 {
					continue
				}
				b.metrics.unconsumed.WithLabelValues(topic, group).Add(float64(lost))
				b.logger.Error("retention deleted records a consumer group had not read; raise -broker.stream-retention-bytes or find why the group lags",
					"topic", topic, "partition", strconv.Itoa(int(p.Partition)), "group", group, "records", lost,
					"committed", committed, "log_start", p.LogStartOffset)
			}
		}
		b.watch.logStart[topic] = now
		b.metrics.bytes.WithLabelValues(topic).Set(float64(bytes))
		b.metrics.records.WithLabelValues(topic).Set(float64(records))
	}
}

// groupCommits are the committed offsets of the groups that read a
// contract topic: group → topic → partition → offset.
func (b *Broker) groupCommits() map[string]map[string]map[int32]int64 {
	out := map[string]map[string]map[int32]int64{}
	for _, g := range b.groups() {
		info := b.cluster.GroupInfo(g)
		if info == nil {
			continue
		}
		for topic, parts := range info.Commits {
			if !slices.Contains(Topics(), topic) {
				continue
			}
			if out[g] == nil {
				out[g] = map[string]map[int32]int64{}
			}
			out[g][topic] = map[int32]int64{}
			for p, c := range parts {
				out[g][topic][p] = c.Offset
			}
		}
	}
	return out
}

// groups lists the consumer groups the broker knows, asking the broker
// itself (kfake has no call for it).
func (b *Broker) groups() []string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := kmsg.NewPtrListGroupsRequest().RequestWith(ctx, b.admin.SeedBrokers()[0])
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		b.logger.Warn("list consumer groups", "err", err)
		return nil
	}
	out := make([]string, 0, len(resp.Groups))
	for _, g := range resp.Groups {
		out = append(out, g.Group)
	}
	return out
}
