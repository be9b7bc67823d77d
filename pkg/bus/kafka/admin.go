package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	kafka "github.com/segmentio/kafka-go"
)

// admin creates missing topics and checks the broker. It remembers the
// topics it has seen so the publish path asks the broker once per topic.
type admin struct {
	client            *kafka.Client
	dialer            *kafka.Dialer
	brokers           []string
	addr              net.Addr
	partitions        int
	replicationFactor int

	known sync.Map // topic → struct{}: read on every publish
}

func newAdmin(cfg Config, transport kafka.RoundTripper) *admin {
	return &admin{
		client:            &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: transport, Timeout: cfg.WriteTimeout},
		addr:              kafka.TCP(cfg.Brokers...),
		dialer:            cfg.dialer(),
		brokers:           cfg.Brokers,
		partitions:        cfg.Partitions,
		replicationFactor: cfg.ReplicationFactor,
	}
}

func (a *admin) isKnown(topic string) bool {
	_, ok := a.known.Load(topic)
	return ok
}

// ensureTopics creates the topics that do not exist yet with the configured
// partitions; topics that exist keep theirs.
func (a *admin) ensureTopics(ctx context.Context, topics ...string) error {
	var missing []kafka.TopicConfig
	for _, t := range topics {
		if !a.isKnown(t) {
			missing = append(missing, kafka.TopicConfig{Topic: t, NumPartitions: a.partitions, ReplicationFactor: a.replicationFactor})
		}
	}
	if len(missing) == 0 {
		return nil
	}
	res, err := a.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Addr: a.addr, Topics: missing})
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	var errs []error
	for _, t := range missing {
		err := res.Errors[t.Topic]
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			// Without the right to create, the topic may still exist.
			if a.exists(ctx, t.Topic) {
				err = nil
			} else {
				errs = append(errs, fmt.Errorf("create topic %s: %w", t.Topic, err))
				continue
			}
		}
		a.known.Store(t.Topic, struct{}{})
	}
	return errors.Join(errs...)
}

func (a *admin) exists(ctx context.Context, topic string) bool {
	ids, err := a.partitionIDs(ctx, topic)
	return err == nil && len(ids) > 0
}

// partitionIDs lists the partition ids of topic. It asks a broker over a
// fresh connection: the shared transport answers metadata from a cache that
// misses topics other clients created.
func (a *admin) partitionIDs(ctx context.Context, topic string) ([]int, error) {
	var err error
	for _, b := range a.brokers {
		var conn *kafka.Conn
		conn, err = a.dialer.DialContext(ctx, "tcp", b)
		if err != nil {
			continue
		}
		var parts []kafka.Partition
		parts, err = conn.ReadPartitions(topic)
		if cerr := conn.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			continue
		}
		ids := make([]int, 0, len(parts))
		for _, p := range parts {
			ids = append(ids, p.ID)
		}
		return ids, nil
	}
	return nil, fmt.Errorf("partitions of %s: %w", topic, err)
}

// ping connects to a broker — TLS handshake and SASL authentication
// included, so their failures show with their cause, which the shared
// transport reports only as "broker not available" — and asks it for its
// API versions: a real round trip, unlike metadata, which the transport
// answers from its cache.
func (a *admin) ping(ctx context.Context) error {
	var errs []error
	for _, b := range a.brokers {
		conn, err := a.dialer.DialContext(ctx, "tcp", b)
		if err != nil {
			errs = append(errs, fmt.Errorf("ping kafka %s: %w", b, err))
			continue
		}
		_, err = conn.ApiVersions()
		if cerr := conn.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("ping kafka %s: %w", b, err))
	}
	return errors.Join(errs...)
}
