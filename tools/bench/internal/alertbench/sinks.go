package alertbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/tmaflow/tmaflow/pkg/bus"
	natsbus "github.com/tmaflow/tmaflow/pkg/bus/nats"
	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

// notification is the part of Alertmanager's webhook payload the bench
// reads.
type notification struct {
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

// webhookHandler marks the arrival of every firing trial alert,
// timestamped when the request arrives.
func webhookHandler(arr *arrivals) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		var n notification
		body, err := io.ReadAll(r.Body)
		if err == nil {
			err = json.Unmarshal(body, &n)
		}
		if err != nil {
			http.Error(w, fmt.Sprintf("decode notification: %v", err), http.StatusBadRequest)
			return
		}
		for _, a := range n.Alerts {
			if a.Status == "firing" && a.Labels["alertname"] == trialAlert {
				arr.mark(a.Labels["resource_id"], at)
			}
		}
	})
}

// webhook serves the handler on a loopback port until Close.
type webhook struct {
	URL string
	srv *http.Server
	ln  net.Listener
}

func startWebhook(h http.Handler) (*webhook, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook listen: %w", err)
	}
	w := &webhook{URL: "http://" + ln.Addr().String() + "/hook", srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, ln: ln}
	go func() { _ = w.srv.Serve(ln) }() // ends with ErrServerClosed on Close
	return w, nil
}

func (w *webhook) Close() error { return w.srv.Close() }

// alertRecord is the part of a topic-alerts value the bench reads.
type alertRecord struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

// alertsFromTopic marks the arrival of every firing trial alert read
// from topic-alerts; other records are ignored, undecodable ones are an
// error.
func alertsFromTopic(arr *arrivals) recordFunc {
	return func(m bus.Record, at time.Time) error {
		var a alertRecord
		if err := json.Unmarshal(m.Value, &a); err != nil {
			return fmt.Errorf("decode topic-alerts record at %d/%d: %w", m.Partition, m.Offset, err)
		}
		if a.State == "firing" && a.Labels["alertname"] == trialAlert {
			arr.mark(a.Labels["resource_id"], at)
		}
		return nil
	}
}

// crossings marks the arrival on topic-metrics of each trial's crossing
// sample: a series named metric with a value above threshold.
func crossings(arr *arrivals, metric string, threshold float64) recordFunc {
	return func(m bus.Record, at time.Time) error {
		b, err := samples.Decode(m.Value)
		if err != nil {
			return fmt.Errorf("decode topic-metrics record at %d/%d: %w", m.Partition, m.Offset, err)
		}
		for _, s := range b.Series {
			name, id := "", ""
			for _, l := range s.Labels {
				switch l.Name {
				case "__name__":
					name = l.Value
				case "resource_id":
					id = l.Value
				}
			}
			if name != metric {
				continue
			}
			for _, smp := range s.Samples {
				if smp.Value > threshold {
					arr.mark(id, at)
				}
			}
		}
		return nil
	}
}

// seriesLearner collects the label sets of topic-metrics, as the
// labeler made them, to remote-write the same series to Prometheus.
type seriesLearner struct {
	mu   sync.Mutex
	seen map[string]map[string]string // by labels key
}

func newSeriesLearner() *seriesLearner {
	return &seriesLearner{seen: map[string]map[string]string{}}
}

func (l *seriesLearner) handle(m bus.Record, _ time.Time) error {
	b, err := samples.Decode(m.Value)
	if err != nil {
		return fmt.Errorf("decode topic-metrics record at %d/%d: %w", m.Partition, m.Offset, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range b.Series {
		key := ""
		set := make(map[string]string, len(s.Labels))
		for _, lb := range s.Labels {
			key += lb.Name + "\x00" + lb.Value + "\x00"
			set[lb.Name] = lb.Value
		}
		if _, ok := l.seen[key]; !ok {
			l.seen[key] = set
		}
	}
	return nil
}

// sets returns the label sets seen so far.
func (l *seriesLearner) sets() []map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]map[string]string, 0, len(l.seen))
	for _, s := range l.seen {
		out = append(out, s)
	}
	return out
}

// recordFunc handles a record read at a time; an error ends the reading.
type recordFunc func(bus.Record, time.Time) error

// consumeBus reads every partition of topic on the bus, from the first
// record (fromStart) or from the end, without a consumer group, as
// consume and consumeNATS do.
func consumeBus(ctx context.Context, b benchkit.Bus, topic string, fromStart bool, fn recordFunc) (wait func() error, err error) {
	if b.Kind == benchkit.BusNATS {
		since := time.Now()
		if fromStart {
			since = time.Time{}
		}
		return consumeNATS(ctx, b.URL(), topic, since, fn)
	}
	start := kafka.LastOffset
	if fromStart {
		start = kafka.FirstOffset
	}
	return consume(ctx, b.Addr, topic, start, fn)
}

// consumeNATS reads every partition of topic on the NATS server at url
// from the first record stored at or after since (zero: the first), with
// the bus's group-less reader, handing each record to fn as it arrives.
// wait stops reading and returns fn's first error.
func consumeNATS(ctx context.Context, url, topic string, since time.Time, fn recordFunc) (wait func() error, err error) {
	cfg := natsbus.DefaultConfig()
	cfg.URL, cfg.Name = url, "tmaflow-bench"
	r, err := natsbus.NewReader(cfg, nil)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var (
		once  sync.Once
		first error
		done  = make(chan error, 1)
	)
	go func() {
		done <- r.Consume(ctx, topic, since, func(rec bus.Record) {
			if err := fn(rec, time.Now()); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}, func() {})
	}()
	return func() error {
		cancel()
		err := <-done // Consume returns once no handler runs
		return errors.Join(first, err)
	}, nil
}

// consume reads every partition of topic from start (kafka.FirstOffset
// or kafka.LastOffset), without a consumer group, and hands each record
// with its arrival time to fn until ctx ends or fn fails, in the
// background; wait stops it and returns the first error. A reader
// resolves kafka.LastOffset when it first fetches, so start it well
// before what it must see.
func consume(ctx context.Context, broker, topic string, start int64, fn recordFunc) (wait func() error, err error) {
	parts, err := partitions(ctx, broker, topic)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	fail := func(err error) {
		once.Do(func() { first = err; cancel() })
	}
	for _, p := range parts {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: []string{broker}, Topic: topic, Partition: p,
			MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 500 * time.Millisecond, ReadLagInterval: -1,
		})
		if err := r.SetOffset(start); err != nil {
			cancel()
			return nil, errors.Join(fmt.Errorf("%s/%d: set offset: %w", topic, p, err), r.Close())
		}
		wg.Go(func() {
			defer func() {
				if err := r.Close(); err != nil && ctx.Err() == nil {
					fail(fmt.Errorf("close reader of %s/%d: %w", topic, p, err))
				}
			}()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					if ctx.Err() == nil {
						fail(fmt.Errorf("read %s/%d: %w", topic, p, err))
					}
					return
				}
				rec := bus.Record{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value, Time: m.Time}
				if err := fn(rec, time.Now()); err != nil {
					fail(err)
					return
				}
			}
		})
	}
	return func() error {
		cancel()
		wg.Wait()
		return first
	}, nil
}

// partitions lists topic's partitions, waiting up to a minute for the
// topic to be created.
func partitions(ctx context.Context, broker, topic string) ([]int, error) {
	client := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second}
	deadline := time.Now().Add(time.Minute)
	for {
		meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err == nil {
			for _, t := range meta.Topics {
				if t.Name == topic && t.Error == nil && len(t.Partitions) > 0 {
					ids := make([]int, 0, len(t.Partitions))
					for _, p := range t.Partitions {
						ids = append(ids, p.ID)
					}
					return ids, nil
				}
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("topic %s has no partitions after a minute (last error: %v)", topic, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
