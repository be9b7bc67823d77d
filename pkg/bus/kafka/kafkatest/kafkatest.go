// Package kafkatest shows tests what a Kafka broker stores and serves as
// record batches, below what consumers see (which codec each batch is
// compressed with), and what kcat reads of it.
package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"

	"github.com/tmaflow/tmaflow/pkg/peertest"
)

// BatchCodecs returns the codec name of every record batch of topic in the
// broker at addr ("uncompressed", "gzip", "snappy", "lz4", "zstd"), as
// fetched from the start of each partition to its high watermark: what
// the broker keeps and hands to consumers, which decompress it.
func BatchCodecs(ctx context.Context, addr, topic string) ([]string, error) {
	// A transport of its own: kafka-go's default one caches metadata, and
	// would not know a topic created since.
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(addr), Transport: transport}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	var codecs []string
	for _, t := range meta.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("metadata of %s: %w", topic, t.Error)
		}
		for _, p := range t.Partitions {
			pc, err := partitionCodecs(ctx, client, topic, p.ID)
			if err != nil {
				return nil, err
			}
			codecs = append(codecs, pc...)
		}
	}
	return codecs, nil
}

func partitionCodecs(ctx context.Context, client *kafka.Client, topic string, partition int) ([]string, error) {
	var codecs []string
	for offset := int64(0); ; {
		res, err := client.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: partition, Offset: offset, MaxBytes: 16 << 20})
		if err == nil {
			err = res.Error
		}
		if err != nil {
			return nil, fmt.Errorf("fetch %s/%d at %d: %w", topic, partition, offset, err)
		}
		if offset >= res.HighWatermark {
			return codecs, nil
		}
		stream, ok := res.Records.(*protocol.RecordStream)
		if !ok {
			return nil, fmt.Errorf("fetch %s/%d at %d: records are a %T, not a stream of batches", topic, partition, offset, res.Records)
		}
		next := offset
		for _, b := range stream.Records {
			batch, ok := b.(*protocol.RecordBatch)
			if !ok {
				continue // control batches
			}
			last, err := lastOffset(batch)
			if err != nil {
				return nil, fmt.Errorf("fetch %s/%d at %d: %w", topic, partition, offset, err)
			}
			if last >= offset {
				codecs = append(codecs, batch.Attributes.Compression().String())
			}
			next = max(next, last+1)
		}
		if next == offset {
			return nil, fmt.Errorf("fetch %s/%d at %d: no record below the high watermark %d", topic, partition, offset, res.HighWatermark)
		}
		offset = next
	}
}

// lastOffset reads batch to its end and returns the offset of its last
// record.
func lastOffset(batch *protocol.RecordBatch) (int64, error) {
	last := batch.BaseOffset
	for {
		r, err := batch.ReadRecord()
		if errors.Is(err, io.EOF) {
			return last, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read batch at %d: %w", batch.BaseOffset, err)
		}
		last = r.Offset
	}
}

// Kcat runs kcat (librdkafka's command-line client) with args and returns
// what it printed. A missing kcat skips the test, or fails it in CI
// (peertest.Binary).
func Kcat(t testing.TB, args ...string) []byte {
	t.Helper()
	kcat := peertest.Binary(t, "kcat")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, kcat, args...).Output()
	if exitErr := (*exec.ExitError)(nil); errors.As(err, &exitErr) {
		t.Fatalf("kcat %q: %v: %s", args, err, exitErr.Stderr)
	}
	if err != nil {
		t.Fatalf("kcat %q: %v", args, err)
	}
	return out
}
