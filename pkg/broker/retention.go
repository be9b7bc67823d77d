package broker

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// streamRetention is the retention of the stream topics.
func (c *Config) streamRetention() time.Duration {
	if c.StreamRetention == 0 {
		return c.Retention
	}
	return c.StreamRetention
}

// streamRetentionBytes is the per-partition size limit of the stream
// topics.
func (c *Config) streamRetentionBytes() int64 {
	if c.StreamRetentionBytes == 0 {
		return c.RetentionBytes
	}
	return c.StreamRetentionBytes
}

// brokerConfigs are the broker-wide defaults, for topics created by
// clients.
func (c *Config) brokerConfigs() map[string]string {
	m := map[string]string{
		"log.retention.ms":    strconv.FormatInt(c.Retention.Milliseconds(), 10),
		"log.retention.bytes": strconv.FormatInt(c.RetentionBytes, 10),
	}
	if c.SegmentBytes > 0 {
		m["log.segment.bytes"] = strconv.FormatInt(c.SegmentBytes, 10)
	}
	return m
}

// topicConfigs are the retention configs of one contract topic.
func (c *Config) topicConfigs(topic string) map[string]string {
	ms, bytes := c.Retention, c.RetentionBytes
	if slices.Contains(StreamTopics(), topic) {
		ms, bytes = c.streamRetention(), c.streamRetentionBytes()
	}
	m := map[string]string{
		"retention.ms":    strconv.FormatInt(ms.Milliseconds(), 10),
		"retention.bytes": strconv.FormatInt(bytes, 10),
	}
	if c.SegmentBytes > 0 {
		m["segment.bytes"] = strconv.FormatInt(c.SegmentBytes, 10)
	}
	return m
}

// configureTopics sets every contract topic's retention configs, so the
// flags of this start win over those a data dir was written with.
func (b *Broker) configureTopics(ctx context.Context) error {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	for _, t := range Topics() {
		r := kmsg.NewIncrementalAlterConfigsRequestResource()
		r.ResourceType = kmsg.ConfigResourceTypeTopic
		r.ResourceName = t
		for k, v := range b.cfg.topicConfigs(t) {
			c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
			c.Name = k
			c.Value = kmsg.StringPtr(v)
			c.Op = kmsg.IncrementalAlterConfigOpSet
			r.Configs = append(r.Configs, c)
		}
		req.Resources = append(req.Resources, r)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(ctx, b.admin.SeedBrokers()[0])
	if err != nil {
		return fmt.Errorf("configure topics on %s: %w", b.addr, err)
	}
	for _, r := range resp.Resources {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return fmt.Errorf("configure topic %s: %w", r.ResourceName, err)
		}
	}
	return nil
}
