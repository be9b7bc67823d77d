// Package brokertest reads topics back with a plain kafka-go client, so
// tests check what any Kafka consumer would see.
package brokertest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
)

// ReadAll returns every record of topic currently in the broker at addr,
// partition by partition in offset order.
func ReadAll(ctx context.Context, addr, topic string) (msgs []kafka.Message, err error) {
	conn, err := kafka.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	defer func() { err = errors.Join(err, conn.Close()) }()
	parts, err := conn.ReadPartitions(topic)
	if err != nil {
		return nil, fmt.Errorf("read partitions of %s: %w", topic, err)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].ID < parts[j].ID })
	for _, p := range parts {
		pm, err := readPartition(ctx, p, topic)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, pm...)
	}
	return msgs, nil
}

// Offsets returns the first and next offset of a partition.
func Offsets(ctx context.Context, addr, topic string, partition int) (first, last int64, err error) {
	lc, err := kafka.DialLeader(ctx, "tcp", addr, topic, partition)
	if err != nil {
		return 0, 0, fmt.Errorf("dial leader of %s/%d: %w", topic, partition, err)
	}
	defer func() { err = errors.Join(err, lc.Close()) }()
	first, last, err = lc.ReadOffsets()
	if err != nil {
		return 0, 0, fmt.Errorf("read offsets of %s/%d: %w", topic, partition, err)
	}
	return first, last, nil
}

func readPartition(ctx context.Context, p kafka.Partition, topic string) (msgs []kafka.Message, err error) {
	addr := net.JoinHostPort(p.Leader.Host, strconv.Itoa(p.Leader.Port))
	first, last, err := Offsets(ctx, addr, topic, p.ID)
	if err != nil || first == last {
		return nil, err
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   []string{addr},
		Topic:     topic,
		Partition: p.ID,
		MaxWait:   50 * time.Millisecond,
	})
	defer func() { err = errors.Join(err, r.Close()) }()
	if err := r.SetOffset(first); err != nil {
		return nil, fmt.Errorf("seek %s/%d to %d: %w", topic, p.ID, first, err)
	}
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			return nil, fmt.Errorf("read %s/%d: %w", topic, p.ID, err)
		}
		msgs = append(msgs, m)
		if m.Offset >= last-1 {
			return msgs, nil
		}
	}
}
