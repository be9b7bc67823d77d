package alertbench

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

// Config is one alert-latency benchmark.
type Config struct {
	benchkit.Setup
	Alertmanager string

	// Background load: Resources resources (ids from FirstResource)
	// sending Rate messages/s in all, DataItems data items each.
	FirstResource int64
	Resources     int
	DataItems     int
	Rate          float64
	Concurrency   int

	// Rules loaded in all (the trial rule and Rules-1 others), in groups
	// of RulesPerGroup rules on one background resource each.
	Rules         int
	RulesPerGroup int
	Threshold     float64
	// TmaflowRuns are the tmaflow runs: which series the trial rule
	// selects, and where the ruler runs; each on every bus of Buses.
	TmaflowRuns []TmaflowShape
	// Buses are the buses tmaflow runs on, each embedded (-bus=kafka,
	// -bus=nats).
	Buses []string

	Trials       int
	Phase        time.Duration // crossing sent at a random time in [gap, gap+Phase) after arming
	TrialTimeout time.Duration
	Warmup       time.Duration
	// Intervals are the evaluation_interval of the Prometheus runs.
	Intervals []time.Duration
	Writers   int
	// Profile is how long tmaflow's CPU is profiled during its trials (0: not).
	Profile time.Duration
	// Stages also times the crossing sample on topic-metrics.
	Stages bool
	Seed   int64
	OutDir string
	// TmaflowArgs are extra flags for tmaflow.
	TmaflowArgs []string
}

// RegisterFlags registers the benchmark's flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Setup.RegisterFlags(fs, "Prometheus binary measured with the same rules")
	fs.StringVar(&c.Alertmanager, "alertmanager", "/usr/bin/prometheus-alertmanager", "Alertmanager binary both systems send to.")
	fs.Int64Var(&c.FirstResource, "first-resource", 200000, "First resourceId of the background load.")
	fs.IntVar(&c.Resources, "resources", 1000, "Resources of the background load, each sending rate/resources messages/s.")
	fs.IntVar(&c.DataItems, "data-items", 10, "Data items (series) per background message.")
	fs.Float64Var(&c.Rate, "rate", 1000, "Background messages/s (open loop), remote-written to Prometheus at the same rate.")
	fs.IntVar(&c.Concurrency, "concurrency", 8, "Connections of the background load.")
	fs.IntVar(&c.Rules, "rules", 1000, "Rules loaded: the trial's threshold rule and rules-1 others that do not fire.")
	fs.IntVar(&c.RulesPerGroup, "rules-per-group", 10, "Rules per group of the others; each group holds the rules of one background resource.")
	fs.Float64Var(&c.Threshold, "threshold", 90, "Threshold of the trial rule (cpu_usage_percent > threshold); the background stays below.")
	c.TmaflowRuns = []TmaflowShape{{}, {Scoped: true}}
	fs.Func("tmaflow.trial-rule", "Comma-separated tmaflow runs by the trial rule's selector: every (cpu_usage_percent > threshold: every background batch triggers its group) and trials (only the trial series, resource_id of 7+ digits), each with -split for the ruler in a process of its own (the monitor, labeler and broker in another, as separate services run). Prometheus always gets every. Default every,trials.", func(s string) error {
		sc, err := parseScopes(s)
		c.TmaflowRuns = sc
		return err
	})
	c.Buses = []string{benchkit.BusKafka}
	fs.Func("bus", "Bus of tmaflow: kafka (the embedded kfake broker), nats (the embedded NATS JetStream server, sync_interval always), or both: every tmaflow run on each in turn (default kafka).", func(s string) error {
		b, err := benchkit.ParseBuses(s)
		c.Buses = b
		return err
	})
	fs.IntVar(&c.Trials, "trials", 200, "Trials per system.")
	fs.DurationVar(&c.Phase, "phase", time.Second, "Crossing values are sent at a uniformly random time within this span (the random phase to evaluation ticks).")
	fs.DurationVar(&c.TrialTimeout, "trial-timeout", 10*time.Second, "Longest wait for a trial's alert.")
	fs.DurationVar(&c.Warmup, "warmup", 10*time.Second, "Background load before the trials of each system.")
	fs.Func("prometheus.intervals", "Comma-separated evaluation_interval of the Prometheus runs (default 1s,100ms).", func(s string) error {
		iv, err := parseIntervals(s)
		c.Intervals = iv
		return err
	})
	c.Intervals = []time.Duration{time.Second, 100 * time.Millisecond}
	fs.IntVar(&c.Writers, "writers", 4, "Remote-write connections of the background load to Prometheus.")
	fs.DurationVar(&c.Profile, "profile", 20*time.Second, "CPU profile of tmaflow taken during its trials (0: none).")
	fs.BoolVar(&c.Stages, "stages", false, "Also time the crossing sample's arrival on topic-metrics (the labeler's output), to split tmaflow's latency; the extra reader costs the broker some CPU.")
	fs.Int64Var(&c.Seed, "seed", 1, "Seed of the random phases.")
	fs.StringVar(&c.OutDir, "out-dir", "", "Keep logs, configs, rules and profiles here (empty: a temporary dir, removed).")
}

// TmaflowShape is one tmaflow run: Scoped, the trial rule selects only
// the trials' series (else every resource's); Split, the ruler runs in a
// process of its own, on the broker of the process running the monitor
// and labeler (else one process runs all three).
type TmaflowShape struct {
	Scoped, Split bool
}

func parseScopes(s string) ([]TmaflowShape, error) {
	var out []TmaflowShape
	for f := range strings.SplitSeq(s, ",") {
		name := strings.TrimSpace(f)
		if name == "" {
			continue
		}
		var sh TmaflowShape
		name, sh.Split = strings.CutSuffix(name, "-split")
		switch name {
		case "every":
		case "trials":
			sh.Scoped = true
		default:
			return nil, fmt.Errorf("trial rule %q: want every or trials, each with -split or not", f)
		}
		out = append(out, sh)
	}
	return out, nil
}

func parseIntervals(s string) ([]time.Duration, error) {
	var out []time.Duration
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		d, err := time.ParseDuration(f)
		if err != nil {
			return nil, fmt.Errorf("interval %q: %w", f, err)
		}
		if d < time.Millisecond {
			return nil, fmt.Errorf("interval %s: want at least 1ms", d)
		}
		out = append(out, d)
	}
	return out, nil
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.TmaflowSource == "" && c.TmaflowBinary == "":
		return errors.New("tmaflow.src or tmaflow.bin must be set")
	case c.Alertmanager == "":
		return errors.New("alertmanager must be set")
	case c.Resources < 1 || c.DataItems < 2 || c.Concurrency < 1 || c.Writers < 1:
		return errors.New("resources, concurrency and writers must be at least 1, data-items at least 2")
	case c.Rate <= 0:
		return fmt.Errorf("rate %g: must be positive", c.Rate)
	case c.Rules < 1 || c.RulesPerGroup < 1:
		return errors.New("rules and rules-per-group must be at least 1")
	case (c.Rules-1+c.RulesPerGroup-1)/c.RulesPerGroup > c.Resources:
		return fmt.Errorf("%d rules in groups of %d need %d background resources, have %d",
			c.Rules-1, c.RulesPerGroup, (c.Rules-1+c.RulesPerGroup-1)/c.RulesPerGroup, c.Resources)
	case c.Threshold <= backgroundMax:
		return fmt.Errorf("threshold %g: must be above the background's values (< %g)", c.Threshold, float64(backgroundMax))
	case c.FirstResource < 0 || c.FirstResource+int64(c.Resources) > trialIDs:
		return fmt.Errorf("background resources %d..%d: must be within 0..%d, below the trials' ids", c.FirstResource, c.FirstResource+int64(c.Resources)-1, trialIDs-1)
	case c.Trials < 1:
		return fmt.Errorf("trials %d: must be at least 1", c.Trials)
	case c.Phase < 0 || c.TrialTimeout <= 0 || c.Warmup < 0 || c.Profile < 0:
		return errors.New("phase, warmup and profile must not be negative, trial-timeout must be positive")
	case len(c.TmaflowRuns) == 0:
		return errors.New("tmaflow.trial-rule: none given")
	case len(c.Buses) == 0:
		return errors.New("bus: none given")
	case c.Prometheus != "" && len(c.Intervals) == 0:
		return errors.New("prometheus.intervals: none given")
	}
	return nil
}

// flagSet registers c's flags on a new flag set (tests and main).
func flagSet(c *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("tmaalert", flag.ContinueOnError)
	c.RegisterFlags(fs)
	return fs
}
