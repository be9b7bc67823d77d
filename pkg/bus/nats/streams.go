package nats

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	kafkago "github.com/segmentio/kafka-go"
)

// topicStream is a topic's stream as created or found.
type topicStream struct {
	topic      string
	stream     string
	token      string // the topic as a subject token
	partitions int
	ids        []int // 0 … partitions-1, for the balancer
}

// subject is the subject of partition p.
func (t *topicStream) subject(p int) string {
	return "tmaflow." + t.token + "." + strconv.Itoa(p)
}

// partition places a record as the Kafka adapter does (kafka-go's
// Murmur2Balancer, the Java client's murmur2): a key always lands on the
// same partition; records without a key are spread at random.
func (t *topicStream) partition(key []byte) int {
	if key == nil {
		return rand.IntN(t.partitions)
	}
	return kafkago.Murmur2Balancer{}.Balance(kafkago.Message{Key: key}, t.ids...)
}

// token makes name usable as a subject token and in consumer names: '.',
// '*', '>', whitespace and path separators become '_', and a name that
// had to change gets a hash of the original, so two names never meet.
func token(name string) string {
	clean := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, name)
	if clean == name && name != "" {
		return name
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return clean + "_" + strconv.FormatUint(uint64(h.Sum32()), 36)
}

// streamName is the stream of a topic: topic-metrics → TMAFLOW_TOPIC_METRICS.
// Names that differ only in case or '-'/'_' would share it; the stream's
// subjects tell them apart (ensure refuses the second).
func streamName(topic string) string {
	return "TMAFLOW_" + strings.ToUpper(strings.ReplaceAll(token(topic), "-", "_"))
}

// consumerName is the durable consumer of group on partition p.
func consumerName(group string, p int) string {
	return token(group) + "_p" + strconv.Itoa(p)
}

// streams creates the streams of topics on first use and remembers them.
type streams struct {
	js  jetstream.JetStream
	cfg Config

	mu    sync.Mutex
	known map[string]*topicStream
}

func newStreams(js jetstream.JetStream, cfg Config) *streams {
	return &streams{js: js, cfg: cfg, known: map[string]*topicStream{}}
}

// ensure returns the stream of topic, creating it when missing with the
// configured partitions, replicas and limits.
func (s *streams) ensure(ctx context.Context, topic string) (*topicStream, error) {
	s.mu.Lock()
	ts, ok := s.known[topic]
	s.mu.Unlock()
	if ok {
		return ts, nil
	}
	name := streamName(topic)
	st, err := s.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		st, err = s.js.CreateStream(ctx, s.streamConfig(topic, name))
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Created meanwhile by another client, maybe with other limits.
			st, err = s.js.Stream(ctx, name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s of topic %s: %w", name, topic, err)
	}
	ts, err = describe(topic, st.CachedInfo())
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.known[topic] = ts
	s.mu.Unlock()
	return ts, nil
}

func (s *streams) streamConfig(topic, name string) jetstream.StreamConfig {
	// The subjects name the partitions one by one, so every client (and
	// servers before 2.10, which keep no stream metadata) reads the
	// partition count from the stream itself.
	ts := &topicStream{token: token(topic)}
	subjects := make([]string, s.cfg.Partitions)
	for p := range subjects {
		subjects[p] = ts.subject(p)
	}
	return jetstream.StreamConfig{
		Name:        name,
		Description: "tmaflow topic " + topic,
		Subjects:    subjects,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		Replicas:    s.cfg.Replicas,
		MaxAge:      s.cfg.MaxAge,
		MaxBytes:    s.cfg.MaxBytes,
		MaxMsgs:     -1,
		Duplicates:  s.cfg.DuplicateWindow,
	}
}

// describe reads the partitions of a stream tmaflow created for topic:
// its subjects are tmaflow.<topic>.0 … tmaflow.<topic>.<n-1>.
func describe(topic string, info *jetstream.StreamInfo) (*topicStream, error) {
	subjects := info.Config.Subjects
	ts := &topicStream{topic: topic, stream: info.Config.Name, token: token(topic), partitions: len(subjects), ids: make([]int, len(subjects))}
	for i := range ts.ids {
		ts.ids[i] = i
		if subjects[i] != ts.subject(i) {
			return nil, fmt.Errorf("stream %s has subjects %v, not the partitions of topic %q (topic names differing only in case or -/_ cannot share a bus)", ts.stream, subjects, topic)
		}
	}
	if ts.partitions == 0 {
		return nil, fmt.Errorf("stream %s has no subjects", ts.stream)
	}
	return ts, nil
}
