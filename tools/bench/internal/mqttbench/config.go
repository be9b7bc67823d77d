// Package mqttbench is the MQTT benchmark behind `make bench-mqtt`:
// QoS-1 messages/s stored end to end (MQTT → bridge → Kafka → labeler →
// persister's TSDB) by a tmaflow process with 1, 100 and 1,000 concurrent
// paho publishers, the MQTT publish → MQTT alert latency, and the same
// publishers against mosquitto with hikhvar/mqtt2prometheus (Debian's
// prometheus-mqtt-exporter) scraped by Prometheus, where the figure is the
// samples that reach Prometheus's TSDB.
package mqttbench

import (
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

// Config configures a run.
type Config struct {
	benchkit.Setup
	Mapping    string
	RulesDir   string
	Publishers []int
	// Duration is how long each step publishes; Window is the QoS-1
	// messages a publisher has unacknowledged at most.
	Duration time.Duration
	Window   int
	// StoreTimeout bounds the wait for acknowledged messages to be in
	// the TSDB after a step.
	StoreTimeout time.Duration
	AlertRounds  int
	// Mosquitto and Exporter are the peers of the comparison (empty:
	// skip it); ComparePublishers the publishers of its step.
	Mosquitto         string
	Exporter          string
	ComparePublishers int
	ScrapeInterval    time.Duration
	// Keep keeps the run's directory (logs, data) instead of removing it.
	Keep        bool
	TmaflowArgs []string
}

// RegisterFlags registers the flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Setup.RegisterFlags(fs, "Prometheus scraping mqtt2prometheus in the comparison")
	fs.StringVar(&c.Mapping, "mapping", "../../examples/mqtt/mapping.yaml", "Bridge mapping file (the demo tenant's routes).")
	fs.StringVar(&c.RulesDir, "rules-dir", "../../examples/rules", "Ruler rules directory (HighCPUUsage of the demo tenant fires the alert measured).")
	fs.Func("publishers", "Comma-separated concurrent publishers of the steps (default 1,100,1000).", func(s string) error {
		ns, err := parseInts(s)
		c.Publishers = ns
		return err
	})
	c.Publishers = []int{1, 100, 1000}
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "How long each step publishes.")
	fs.IntVar(&c.Window, "window", 16, "Unacknowledged QoS-1 messages per publisher at most.")
	fs.DurationVar(&c.StoreTimeout, "store-timeout", 2*time.Minute, "Longest wait for acknowledged messages to reach the TSDB after a step.")
	fs.IntVar(&c.AlertRounds, "alert-rounds", 50, "Fire/resolve rounds of the MQTT alert latency (0: skip).")
	fs.StringVar(&c.Mosquitto, "mosquitto", "/usr/sbin/mosquitto", "mosquitto of the mqtt2prometheus comparison (empty: skip it).")
	fs.StringVar(&c.Exporter, "mqtt2prometheus", "/usr/bin/prometheus-mqtt-exporter", "hikhvar/mqtt2prometheus binary (Debian's prometheus-mqtt-exporter; empty: skip the comparison).")
	fs.IntVar(&c.ComparePublishers, "compare-publishers", 100, "Concurrent publishers of the mqtt2prometheus comparison.")
	fs.BoolVar(&c.Keep, "keep", false, "Keep the run's temporary directory (logs, data) and print its path.")
	fs.DurationVar(&c.ScrapeInterval, "scrape-interval", time.Second, "Prometheus's scrape interval of mqtt2prometheus.")
}

// Validate checks the config.
func (c Config) Validate() error {
	var errs []error
	if len(c.Publishers) == 0 {
		errs = append(errs, errors.New("publishers: none"))
	}
	if c.Duration <= 0 || c.Window <= 0 || c.StoreTimeout <= 0 || c.ScrapeInterval <= 0 {
		errs = append(errs, errors.New("duration, window, store-timeout and scrape-interval must be > 0"))
	}
	if c.AlertRounds < 0 || c.ComparePublishers <= 0 {
		errs = append(errs, errors.New("alert-rounds must be >= 0, compare-publishers > 0"))
	}
	return errors.Join(errs...)
}

func parseInts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("publishers %q: want positive integers", s)
		}
		out = append(out, n)
	}
	return out, nil
}
