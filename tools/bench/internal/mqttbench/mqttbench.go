package mqttbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
	"github.com/tmaflow/tmaflow/tools/bench/internal/loadgen"
)

// Result is a run's figures.
type Result struct {
	Steps  []Step
	Alerts *AlertLatency
	// Compare is the mqtt2prometheus step (nil: skipped).
	Compare *Comparison
}

// Step is one publisher count against tmaflow.
type Step struct {
	stepResult
	// Stored is the samples of the step in the TSDB; StoredAfter the time
	// from the first publish until the last acknowledged one was there.
	Stored      int64
	StoredAfter time.Duration
	// Batch is the bridge's mean MQTT messages per bus batch, PublishMs
	// its mean wait for the bus's acknowledgement of one.
	Batch, PublishMs float64
	// TmaflowCPU and BenchCPU are the cores tmaflow and this process
	// (the publishers) used while publishing.
	TmaflowCPU, BenchCPU float64
	// Profile is tmaflow's CPU profile over the publishing, by service
	// and by work (nil: not taken).
	Profile *benchkit.ProfileSummary
}

// AckedPerSecond is the QoS-1 acknowledgement rate of the step.
func (s stepResult) AckedPerSecond() float64 { return float64(s.Acked) / s.Elapsed.Seconds() }

// StoredPerSecond is the end-to-end rate: samples in the TSDB over the
// time from the first publish until they were all there.
func (s Step) StoredPerSecond() float64 { return float64(s.Stored) / s.StoredAfter.Seconds() }

// AlertLatency is MQTT publish → retained MQTT alert (firing) and →
// cleared (resolved).
type AlertLatency struct {
	Fire, Resolve []time.Duration
}

type addrs struct{ broker, bridge, mqtt, labeler, persister, ruler, debug string }

type bench struct {
	cfg    Config
	out    io.Writer
	dir    string
	bin    string
	addrs  addrs
	tf     *benchkit.Process
	client *http.Client
}

// Run runs the benchmark and prints its report to out.
func Run(ctx context.Context, cfg Config, out io.Writer) (res Result, err error) {
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	dir, err := os.MkdirTemp("", "tmamqtt-")
	if err != nil {
		return res, fmt.Errorf("temp dir: %w", err)
	}
	defer func() {
		if cfg.Keep {
			_, _ = fmt.Fprintf(out, "run directory kept: %s\n", dir)
			return
		}
		err = errors.Join(err, os.RemoveAll(dir))
	}()
	b := &bench{cfg: cfg, out: out, dir: dir, client: &http.Client{Timeout: 30 * time.Second}}
	if b.bin, err = cfg.Tmaflow(ctx, dir, out); err != nil {
		return res, err
	}
	if err := b.startTmaflow(ctx); err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.tf.Stop(time.Minute)) }()

	for _, n := range cfg.Publishers {
		st, err := b.step(ctx, n)
		if err != nil {
			return res, fmt.Errorf("step of %d publishers: %w", n, err)
		}
		res.Steps = append(res.Steps, st)
		b.printStep(st)
	}
	if cfg.AlertRounds > 0 {
		if res.Alerts, err = b.alertLatency(ctx); err != nil {
			return res, err
		}
		b.printAlerts(res.Alerts)
	}
	if cfg.Mosquitto != "" && cfg.Exporter != "" && cfg.Prometheus != "" {
		if res.Compare, err = b.compare(ctx); err != nil {
			return res, fmt.Errorf("mqtt2prometheus comparison: %w", err)
		}
		b.printCompare(res.Compare)
	}
	return res, nil
}

func (b *bench) printf(format string, args ...any) { _, _ = fmt.Fprintf(b.out, format, args...) }

func (b *bench) startTmaflow(ctx context.Context) error {
	ports, err := benchkit.FreePorts(7)
	if err != nil {
		return err
	}
	b.addrs = addrs{broker: ports[0], bridge: ports[1], mqtt: ports[2], labeler: ports[3], persister: ports[4], ruler: ports[5], debug: ports[6]}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		return a
	}
	args := append([]string{
		"-target=bridge,labeler,persister,ruler",
		"-data-dir=" + filepath.Join(b.dir, "tmaflow-data"),
		"-registry=" + abs(b.cfg.Registry),
		"-broker.listen-address=" + b.addrs.broker,
		"-bridge.listen-address=" + b.addrs.bridge,
		"-bridge.mqtt.listen-address=" + b.addrs.mqtt,
		"-bridge.mapping=" + abs(b.cfg.Mapping),
		"-labeler.listen-address=" + b.addrs.labeler,
		"-persister.listen-address=" + b.addrs.persister,
		"-ruler.listen-address=" + b.addrs.ruler,
		"-ruler.rules.dir=" + abs(b.cfg.RulesDir),
		"-debug.listen-address=" + b.addrs.debug,
		"-log.level=warn",
	}, b.cfg.TmaflowArgs...)
	if b.tf, err = benchkit.StartProcess("tmaflow", b.bin, args, filepath.Join(b.dir, "tmaflow.log")); err != nil {
		return err
	}
	for _, addr := range []string{b.addrs.bridge, b.addrs.labeler, b.addrs.persister, b.addrs.ruler} {
		if err := benchkit.WaitReady(ctx, b.tf, "http://"+addr+"/-/ready", time.Minute); err != nil {
			return errors.Join(err, b.tf.Stop(time.Minute))
		}
	}
	return nil
}

// The bridge's batch metrics.
const (
	metricBatch   = "tmaflow_bridge_publish_batch_messages"
	metricPublish = "tmaflow_bridge_publish_duration_seconds"
)

// sampleBase is the first timestamp of every publisher's samples: each
// message carries its own (base + sequence ms), so a message sent twice is
// one sample, and a step's samples are all in the TSDB's head range.
func sampleBase() time.Time { return time.Now().Add(-10 * time.Minute) }

// step publishes with n clients and waits until the TSDB holds what was
// acknowledged.
func (b *bench) step(ctx context.Context, n int) (Step, error) {
	s, err := connectSwarm(b.addrs.mqtt, b.cfg.User, b.cfg.Password, fmt.Sprintf("bench%d", n), n)
	if err != nil {
		return Step{}, err
	}
	defer s.close()
	bridgeMetrics := func() (map[string]float64, error) {
		return benchkit.Scrape(ctx, b.client, "http://"+b.addrs.bridge+"/metrics", metricBatch, metricPublish)
	}
	m0, err := bridgeMetrics()
	if err != nil {
		return Step{}, err
	}
	base := sampleBase().UnixMilli()
	cpu0, err := b.cpu()
	if err != nil {
		return Step{}, err
	}
	profile := filepath.Join(b.dir, fmt.Sprintf("tmaflow-%d.pprof", n))
	profileWall := b.cfg.Duration - time.Second
	profErr := make(chan error, 1)
	go func() { profErr <- benchkit.FetchProfile(ctx, b.addrs.debug, profileWall, profile) }()
	start := time.Now()
	r := s.publish(ctx, b.cfg.Duration, b.cfg.Window,
		func(i int) string { return fmt.Sprintf("demo/sites/bench/devices/p%d/exposition", i) },
		func(_ int, seq int64) []byte {
			return fmt.Appendf(nil, "bench_value{step=\"%d\"} %d %d\n", n, seq, base+seq)
		})
	st := Step{stepResult: r}
	cpu1, err := b.cpu()
	if err != nil {
		return st, err
	}
	st.TmaflowCPU = (cpu1.tmaflow - cpu0.tmaflow).Seconds() / r.Elapsed.Seconds()
	st.BenchCPU = (cpu1.bench - cpu0.bench).Seconds() / r.Elapsed.Seconds()
	if err := <-profErr; err != nil {
		b.printf("profile of %d publishers: %v\n", n, err)
	} else if p, err := benchkit.Summarise(ctx, b.cfg.GoBinary, b.bin, profile, profileWall, byService(), benchkit.ByWork); err != nil {
		b.printf("profile summary of %d publishers: %v\n", n, err)
	} else {
		p.Run = fmt.Sprintf("%d publishers", n)
		st.Profile = &p
	}
	m1, err := bridgeMetrics()
	if err != nil {
		return st, err
	}
	if n := m1[metricBatch+"_count"] - m0[metricBatch+"_count"]; n > 0 {
		st.Batch = (m1[metricBatch+"_sum"] - m0[metricBatch+"_sum"]) / n
	}
	if n := m1[metricPublish+"_count"] - m0[metricPublish+"_count"]; n > 0 {
		st.PublishMs = 1000 * (m1[metricPublish+"_sum"] - m0[metricPublish+"_sum"]) / n
	}
	api := benchkit.QueryAPI{Client: b.client, URL: "http://" + b.addrs.persister, User: b.cfg.User, Password: b.cfg.Password}
	expr := fmt.Sprintf(`sum(count_over_time(bench_value{step="%d"}[1h]))`, n)
	deadline := time.Now().Add(b.cfg.StoreTimeout)
	for {
		if st.Stored, err = instant(ctx, api, expr); err != nil {
			return st, err
		}
		if st.Stored >= r.Acked {
			st.StoredAfter = time.Since(start)
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("%d of %d acknowledged messages in the TSDB after %s", st.Stored, r.Acked, b.cfg.StoreTimeout)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// instant evaluates a scalar-valued expression now (0 for no result).
func instant(ctx context.Context, api benchkit.QueryAPI, expr string) (int64, error) {
	now := time.Now()
	rs, err := api.QueryRange(ctx, expr, now, now, time.Second)
	if err != nil || len(rs) == 0 {
		return 0, err
	}
	v, err := rs[0].Sum()
	return int64(v), err
}

// alertTopic is where the bridge retains the demo rule's alert.
const alertTopic = "tmaflow/demo/alerts/demo-host/HighCPUUsage"

// cpuMessage is a TMA message of the demo probe on demo-host with one
// cpu_usage value, which HighCPUUsage compares with 90.
func cpuMessage(id int64, value float64, at time.Time) []byte {
	return fmt.Appendf(nil, `{"probeId":0,"resourceId":101098,"messageId":%d,"sentTime":%[2]d,"data":[{"descriptionId":0,"type":"measurement","observations":[{"time":%[2]d,"value":%[3]g}]}]}`,
		id, at.UnixMilli(), value)
}

// alertLatency times publish → retained alert and publish → cleared over
// fire/resolve rounds.
func (b *bench) alertLatency(ctx context.Context) (*AlertLatency, error) {
	s, err := connectSwarm(b.addrs.mqtt, b.cfg.User, b.cfg.Password, "alert", 2)
	if err != nil {
		return nil, err
	}
	defer s.close()
	pub, sub := s.clients[0], s.clients[1]
	got := make(chan bool, 16) // true: an alert, false: cleared
	tok := sub.Subscribe(alertTopic, 1, func(_ paho.Client, m paho.Message) { got <- len(m.Payload()) > 0 })
	if !tok.WaitTimeout(connectTimeout) || tok.Error() != nil {
		return nil, fmt.Errorf("subscribe %s: %v", alertTopic, tok.Error())
	}
	var lat AlertLatency
	id := int64(0)
	send := func(value float64, want bool) (time.Duration, error) {
		id++
		start := time.Now()
		pub.Publish("demo/tma/demo-host", 1, false, cpuMessage(id, value, start))
		timeout := time.After(30 * time.Second)
		for {
			select {
			case firing := <-got:
				if firing == want {
					return time.Since(start), nil
				}
			case <-timeout:
				return 0, fmt.Errorf("no %v alert message within 30s", want)
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
	}
	// Start resolved, whatever a retained message says.
	id++
	pub.Publish("demo/tma/demo-host", 1, false, cpuMessage(id, 10, time.Now())).WaitTimeout(connectTimeout)
	time.Sleep(time.Second)
	drain(got)
	for range b.cfg.AlertRounds {
		d, err := send(97.5, true)
		if err != nil {
			return nil, err
		}
		lat.Fire = append(lat.Fire, d)
		if d, err = send(40, false); err != nil {
			return nil, err
		}
		lat.Resolve = append(lat.Resolve, d)
	}
	return &lat, nil
}

func drain(c chan bool) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

func (b *bench) printStep(s Step) {
	b.printf("tmaflow  %5d publishers: %8d published, %8d acked (%d failed) in %5.1fs: %9.0f acked msg/s; %8d stored after %5.1fs: %9.0f stored msg/s end to end, lost %d; bridge batches %.1f msgs, bus ack %.2fms; CPU tmaflow %.2f + publishers %.2f cores\n",
		s.Publishers, s.Published, s.Acked, s.Failed, s.Elapsed.Seconds(), s.AckedPerSecond(), s.Stored, s.StoredAfter.Seconds(), s.StoredPerSecond(), max(0, s.Acked-s.Stored), s.Batch, s.PublishMs, s.TmaflowCPU, s.BenchCPU)
	if s.Profile != nil {
		benchkit.PrintProfile(b.out, s.Profile)
	}
}

// cpuTimes is the CPU tmaflow and this process have used so far.
type cpuTimes struct{ tmaflow, bench time.Duration }

func (b *bench) cpu() (cpuTimes, error) {
	u, err := b.tf.Usage()
	if err != nil {
		return cpuTimes{}, err
	}
	return cpuTimes{tmaflow: u.CPU, bench: loadgen.ProcessCPU()}, nil
}

func (b *bench) printAlerts(a *AlertLatency) {
	p := func(ds []time.Duration, q float64) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return loadgen.Percentile(s, q)
	}
	b.printf("alert over MQTT (%d rounds): publish → retained alert p50 %s p99 %s; publish → cleared p50 %s p99 %s\n",
		len(a.Fire), p(a.Fire, 0.5).Round(10*time.Microsecond), p(a.Fire, 0.99).Round(10*time.Microsecond),
		p(a.Resolve, 0.5).Round(10*time.Microsecond), p(a.Resolve, 0.99).Round(10*time.Microsecond))
}
