package benchkit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"

	natsbus "github.com/tmaflow/tmaflow/pkg/bus/nats"
)

// The buses a tmaflow under test runs on (its -bus), each embedded.
const (
	BusKafka = "kafka"
	BusNATS  = "nats"
)

// ParseBuses parses a benchmark's -bus: kafka, nats, both (kafka then
// nats, in one run), or a comma-separated list.
func ParseBuses(s string) ([]string, error) {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		switch f = strings.TrimSpace(f); f {
		case "":
		case "both":
			out = append(out, BusKafka, BusNATS)
		case BusKafka, BusNATS:
			out = append(out, f)
		default:
			return nil, fmt.Errorf("bus %q: want kafka, nats, both or a comma-separated list", f)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("bus: none given")
	}
	slices.Sort(out)
	out = slices.Compact(out) // kafka before nats
	return out, nil
}

// Bus is the bus of a tmaflow under test: its embedded Kafka broker or
// NATS server (JetStream, sync_interval always by default), listening on
// Addr.
type Bus struct {
	Kind string
	Addr string // host:port
}

// Args are the tmaflow flags that run the embedded broker or server on
// Addr.
func (b Bus) Args() []string {
	if b.Kind == BusNATS {
		return []string{"-bus=nats", "-nats.listen-address=" + b.Addr}
	}
	return []string{"-broker.listen-address=" + b.Addr}
}

// ClientArgs are the flags of another tmaflow process that uses that
// broker or server as an external one.
func (b Bus) ClientArgs() []string {
	if b.Kind == BusNATS {
		return []string{"-bus=nats", "-nats.url=" + b.URL()}
	}
	return []string{"-kafka.brokers=" + b.Addr}
}

// URL is the address clients dial: nats://Addr on NATS, Addr on Kafka.
func (b Bus) URL() string {
	if b.Kind == BusNATS {
		return "nats://" + b.Addr
	}
	return b.Addr
}

// Title names the bus in reports.
func (b Bus) Title() string { return BusTitle(b.Kind) }

// BusTitle names bus kind in reports.
func BusTitle(kind string) string {
	if kind == BusNATS {
		return "NATS JetStream (embedded nats-server)"
	}
	return "Kafka (embedded kfake broker)"
}

// Durability says when the bus acknowledges a write, given the extra
// flags tmaflow runs with (-broker.sync-writes, -nats.sync-interval):
// what a comparison of the buses must keep in mind.
func (b Bus) Durability(tmaflowArgs []string) string {
	if b.Kind == BusNATS {
		sync := "always"
		if v, ok := flagValue(tmaflowArgs, "nats.sync-interval"); ok {
			sync = v
		}
		if sync == "always" {
			return "fsync before every acknowledgement (-nats.sync-interval=always, the default)"
		}
		return "written to the page cache before the acknowledgement, fsync every " + sync + " (-nats.sync-interval=" + sync + ")"
	}
	if v, ok := flagValue(tmaflowArgs, "broker.sync-writes"); ok && (v == "" || v == "true") {
		return "fsync of every produced batch before its acknowledgement (-broker.sync-writes)"
	}
	return "written to the page cache before the acknowledgement, no fsync (-broker.sync-writes=false, the default, as Kafka's)"
}

// flagValue finds -name or -name=value (one or two dashes) in args; ""
// for a bare -name.
func flagValue(args []string, name string) (string, bool) {
	value, found := "", false
	for _, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if n, v, hasValue := strings.Cut(a, "="); n == name {
			value, found = "", true
			if hasValue {
				value = v
			}
		}
	}
	return value, found
}

// Lags returns a reader of the consumer groups' lags on the bus.
func (b Bus) Lags() (LagSource, error) {
	if b.Kind == BusNATS {
		return NewNATSLagReader(b.URL()), nil
	}
	return NewLagReader(b.Addr), nil
}

// BusParts are the parts of a tmaflow CPU profile (by service, by
// priority) that carry records on bus kind: the embedded broker or server
// and the clients of the services. The clients' part also takes the bus
// package's own code (batches, turns), as the adapters run it.
func BusParts(kind string) (server, clients Part) {
	if kind == BusNATS {
		return Part{Name: "embedded NATS server (nats-server)", Re: regexp.MustCompile(`nats-io/nats-server`)},
			Part{Name: "NATS clients (nats.go: publish, fetch)", Re: regexp.MustCompile(`nats-io/nats\.go|tmaflow/pkg/bus`)}
	}
	return Part{Name: "embedded broker (kfake)", Re: regexp.MustCompile(`franz-go/pkg/kfake|tmaflow/pkg/broker`)},
		Part{Name: "kafka clients (kafka-go: produce, fetch)", Re: regexp.MustCompile(`segmentio/kafka-go|tmaflow/pkg/bus`)}
}

// GoGCPart is the part of a by-service attribution that the runtime's
// background collector takes (stacks rooted in its workers).
var GoGCPart = Part{Name: "Go GC", Re: regexp.MustCompile(`runtime\.gcBgMarkWorker|runtime\.bgsweep|runtime\.bgscavenge`)}

// LagSource reads consumer lags from a bus.
type LagSource interface {
	// Lags reads the lag of every consumer, in records.
	Lags(ctx context.Context, cs []Consumer) ([]int64, error)
	Close() error
}

// NATSLagReader measures consumer lag on NATS JetStream as the groups'
// subscribers report it: each partition consumer's pending messages plus
// those delivered and not acknowledged (every message of a partition
// whose consumer does not exist yet). As on Kafka it also sees a stuck
// consumer.
type NATSLagReader struct {
	url  string
	mu   sync.Mutex
	subs map[string]*natsbus.Subscriber // by group; never subscribed
}

// NewNATSLagReader reads lags from the NATS server at url.
func NewNATSLagReader(url string) *NATSLagReader {
	return &NATSLagReader{url: url, subs: map[string]*natsbus.Subscriber{}}
}

// Lag returns how many messages of c.Topic the group has not
// acknowledged.
func (l *NATSLagReader) Lag(ctx context.Context, c Consumer) (int64, error) {
	l.mu.Lock()
	s, ok := l.subs[c.Group]
	if !ok {
		cfg := natsbus.DefaultConfig()
		cfg.URL, cfg.ConsumerGroup, cfg.Name = l.url, c.Group, "tmaflow-bench-lag"
		var err error
		if s, err = natsbus.NewSubscriber(cfg, slog.New(slog.DiscardHandler), nil); err != nil {
			l.mu.Unlock()
			return 0, fmt.Errorf("lag of %s in %s: %w", c.Topic, c.Group, err)
		}
		l.subs[c.Group] = s
	}
	l.mu.Unlock()
	return s.Lag(ctx, c.Topic)
}

// Lags reads the lag of every consumer.
func (l *NATSLagReader) Lags(ctx context.Context, cs []Consumer) ([]int64, error) {
	return lags(ctx, cs, l.Lag)
}

// Close closes the connections.
func (l *NATSLagReader) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, s := range l.subs {
		errs = append(errs, s.Close())
	}
	l.subs = map[string]*natsbus.Subscriber{}
	return errors.Join(errs...)
}

func lags(ctx context.Context, cs []Consumer, lag func(context.Context, Consumer) (int64, error)) ([]int64, error) {
	out := make([]int64, len(cs))
	var errs []error
	for i, c := range cs {
		n, err := lag(ctx, c)
		out[i] = n
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}
