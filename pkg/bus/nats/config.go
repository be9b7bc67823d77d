// Package nats implements Watermill's message.Publisher and
// message.Subscriber on NATS JetStream (nats.go's jetstream package), with
// the delivery contract of the Kafka adapter: one stream per topic whose
// subjects are the topic's partitions, tmaflow.<topic>.<partition>, a record
// placed on partition murmur2(key) mod partitions as Kafka's Java client
// places it, each partition consumed in order by one durable pull consumer
// per consumer group, acknowledged only in order and only for messages the
// handler acknowledged, and Publish answered only after the stream's PubAck.
//
// Messages map to NATS messages as follows: the payload is the data, every
// metadata entry is a header of the same name, the record key travels in
// HeaderKey and the Watermill UUID in HeaderUUID. Header values that a NATS
// header cannot carry (binary keys, line breaks) are base64-encoded and
// named in HeaderEncoded.
package nats

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/tmaflow/tmaflow/pkg/service"
)

// Config configures the NATS client of a publisher, subscriber or reader.
type Config struct {
	// URL lists the servers, comma-separated (nats://host:4222). Empty is
	// valid for Validate: tmaflow then starts its embedded server and fills
	// it in (RequireURL).
	URL  string
	Name string

	// Authentication, as nats.go supports it: a credentials file (JWT and
	// NKEY seed), an NKEY seed file, user and password, or a token.
	CredentialsFile string
	NKeyFile        string
	User            string
	Password        string
	Token           string
	TLS             TLSConfig

	// Streams created when missing.
	Partitions      int
	Replicas        int
	MaxAge          time.Duration
	MaxBytes        int64
	DuplicateWindow time.Duration

	// Producer.
	PublishTimeout time.Duration
	MaxPending     int

	// Consumer.
	ConsumerGroup  string
	RequestTimeout time.Duration
	AckWait        time.Duration
	PinnedTTL      time.Duration
	NackBackoff    time.Duration
	MaxInFlight    int
}

// TLSConfig is the client's TLS: a CA to verify the server and a client
// certificate for mutual TLS.
type TLSConfig struct {
	CAFile   string
	CertFile string
	KeyFile  string
}

// RegisterFlags registers the nats.* client flags.
func (c *Config) RegisterFlags(f service.FlagSet) {
	f.StringVar(&c.URL, "nats.url", "", "Comma-separated NATS server URLs (nats://host:4222, tls://…); empty in tmaflow with -bus=nats: the embedded server.")
	f.StringVar(&c.Name, "nats.client-name", "tmaflow", "NATS connection name.")
	f.StringVar(&c.CredentialsFile, "nats.credentials-file", "", "NATS credentials file (user JWT and NKEY seed, from nsc).")
	f.StringVar(&c.NKeyFile, "nats.nkey-file", "", "File with the NKEY seed of the user.")
	f.StringVar(&c.User, "nats.user", "", "NATS user name.")
	f.StringVar(&c.Password, "nats.password", "", "NATS password of -nats.user.")
	f.StringVar(&c.Token, "nats.token", "", "NATS authentication token.")
	f.StringVar(&c.TLS.CAFile, "nats.tls.ca-file", "", "CA certificates (PEM) to verify the NATS server; implies TLS.")
	f.StringVar(&c.TLS.CertFile, "nats.tls.cert-file", "", "Client certificate (PEM) for mutual TLS; with -nats.tls.key-file.")
	f.StringVar(&c.TLS.KeyFile, "nats.tls.key-file", "", "Client key (PEM) for mutual TLS.")
	f.IntVar(&c.Partitions, "nats.partitions", 8, "Partitions (subjects tmaflow.<topic>.<n>) of streams created when missing; an existing stream keeps its own.")
	f.IntVar(&c.Replicas, "nats.replicas", 1, "Replicas of streams created when missing (3 or 5 on a cluster).")
	f.DurationVar(&c.MaxAge, "nats.max-age", 168*time.Hour, "Messages older than this are deleted from the streams (0: kept).")
	f.Int64Var(&c.MaxBytes, "nats.max-bytes", -1, "Oldest messages of a stream are deleted once it holds more bytes than this; -1 means no limit.")
	f.DurationVar(&c.DuplicateWindow, "nats.duplicate-window", 2*time.Minute, "How long a stream remembers message ids (Nats-Msg-Id): a publish retried within it is stored once.")
	f.DurationVar(&c.PublishTimeout, "nats.publish-timeout", 30*time.Second, "Bound on Publish when the message context has no deadline.")
	f.IntVar(&c.MaxPending, "nats.max-pending", 4096, "Publishes awaiting the stream's acknowledgement before Publish waits.")
	f.StringVar(&c.ConsumerGroup, "nats.consumer-group", "", "Consumer group of a service's own binary (its durable consumers are <group>_p<n>), overriding the service's own group flag; empty: the service's. Not used by tmaflow, where each service names its groups.")
	f.DurationVar(&c.RequestTimeout, "nats.request-timeout", 10*time.Second, "Timeout of JetStream API requests (stream and consumer creation, lag).")
	f.DurationVar(&c.AckWait, "nats.ack-wait", 30*time.Second, "How long the server waits for a delivered message's acknowledgement before it delivers it again; handlers still at work keep it alive. After a crash unacknowledged messages come again after it.")
	f.DurationVar(&c.PinnedTTL, "nats.pinned-ttl", 10*time.Second, "A partition's consumer is pinned to one subscriber of the group (per-key order); a silent subscriber loses it after this.")
	f.DurationVar(&c.NackBackoff, "nats.nack-backoff", 100*time.Millisecond, "Delay before a nacked message is delivered again.")
	f.IntVar(&c.MaxInFlight, "nats.max-in-flight", 64, "Messages of one partition handed to handlers before the first is acknowledged (the consumer's max ack pending); handlers that must keep the partition's order take turns.")
}

// DefaultConfig returns the flag defaults, for tests and embedding callers.
func DefaultConfig() Config {
	var c Config
	c.RegisterFlags(flag.NewFlagSet("defaults", flag.ContinueOnError))
	return c
}

// Validate checks everything but the URL: tmaflow runs an embedded server
// when none is given, so the caller decides (RequireURL).
func (c Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.Partitions > 0, "nats.partitions must be > 0, got %d", c.Partitions)
	check(c.Replicas > 0 && c.Replicas <= 5, "nats.replicas must be 1 to 5, got %d", c.Replicas)
	check(c.MaxAge >= 0, "nats.max-age must be >= 0, got %s", c.MaxAge)
	check(c.MaxBytes > 0 || c.MaxBytes == -1, "nats.max-bytes must be > 0 or -1, got %d", c.MaxBytes)
	check(c.DuplicateWindow > 0, "nats.duplicate-window must be > 0, got %s", c.DuplicateWindow)
	check(c.MaxAge == 0 || c.DuplicateWindow <= c.MaxAge, "nats.duplicate-window (%s) must not exceed nats.max-age (%s)", c.DuplicateWindow, c.MaxAge)
	check(c.PublishTimeout > 0, "nats.publish-timeout must be > 0, got %s", c.PublishTimeout)
	check(c.MaxPending > 0, "nats.max-pending must be > 0, got %d", c.MaxPending)
	check(c.RequestTimeout > 0, "nats.request-timeout must be > 0, got %s", c.RequestTimeout)
	check(c.AckWait >= time.Second, "nats.ack-wait must be >= 1s, got %s", c.AckWait)
	check(c.PinnedTTL >= time.Second, "nats.pinned-ttl must be >= 1s, got %s", c.PinnedTTL)
	check(c.NackBackoff >= 0, "nats.nack-backoff must be >= 0, got %s", c.NackBackoff)
	check(c.MaxInFlight > 0, "nats.max-in-flight must be > 0, got %d", c.MaxInFlight)
	auth := 0
	for _, set := range []bool{c.CredentialsFile != "", c.NKeyFile != "", c.User != "", c.Token != ""} {
		if set {
			auth++
		}
	}
	check(auth <= 1, "nats: set at most one of nats.credentials-file, nats.nkey-file, nats.user, nats.token")
	check(c.Password == "" || c.User != "", "nats.password needs nats.user")
	check((c.TLS.CertFile == "") == (c.TLS.KeyFile == ""), "nats.tls.cert-file and nats.tls.key-file go together")
	for _, u := range c.urls() {
		check(strings.Contains(u, "://") || strings.Contains(u, ":"), "nats.url: %q is not a URL or host:port", u)
	}
	return errors.Join(errs...)
}

// ErrNoURL is returned by RequireURL for an empty URL.
var ErrNoURL = errors.New("nats.url: a NATS server URL is required")

// RequireURL fails when no server is configured.
func (c Config) RequireURL() error {
	if strings.TrimSpace(c.URL) == "" {
		return ErrNoURL
	}
	return nil
}

func (c Config) urls() []string {
	var out []string
	for u := range strings.SplitSeq(c.URL, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}
