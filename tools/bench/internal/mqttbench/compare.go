package mqttbench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

// Comparison is the same publishers against mosquitto, with
// mqtt2prometheus subscribed and Prometheus scraping it.
type Comparison struct {
	stepResult
	// Stored is the samples Prometheus's TSDB holds of what was published.
	Stored int64
}

// exporterConfig is mqtt2prometheus's configuration: QoS-1 subscription
// to bench/+, the last topic level as the sensor label, the "value" field.
const exporterConfig = `mqtt:
  server: tcp://%s
  topic_path: bench/+
  device_id_regex: "bench/(?P<deviceid>.*)"
  qos: 1
cache:
  timeout: 60m
metrics:
  - prom_name: bench_value
    mqtt_name: value
    help: benchmark value
    type: gauge
`

const prometheusConfig = `global:
  scrape_interval: %[1]s
scrape_configs:
  - job_name: mqtt2prometheus
    scrape_interval: %[1]s
    static_configs:
      - targets: ['%[2]s']
`

// compare runs mosquitto, mqtt2prometheus and Prometheus, publishes with
// ComparePublishers clients to mosquitto, and counts the samples
// Prometheus stored.
func (b *bench) compare(ctx context.Context) (c *Comparison, err error) {
	ports, err := benchkit.FreePorts(3)
	if err != nil {
		return nil, err
	}
	mqttAddr, exporterAddr, promAddr := ports[0], ports[1], ports[2]
	dir := filepath.Join(b.dir, "compare")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("compare dir: %w", err)
	}
	write := func(name, text string) (string, error) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			return "", fmt.Errorf("write %s: %w", name, err)
		}
		return p, nil
	}
	_, mqttPort, _ := net.SplitHostPort(mqttAddr)
	mqConf, err := write("mosquitto.conf", fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 0\nmax_queued_messages 100000\n", mqttPort))
	if err != nil {
		return nil, err
	}
	mq, err := benchkit.StartProcess("mosquitto", b.cfg.Mosquitto, []string{"-c", mqConf}, filepath.Join(dir, "mosquitto.log"))
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, stopPeer(mq)) }()
	if err := waitListening(ctx, mq, mqttAddr); err != nil {
		return nil, err
	}

	exConf, err := write("mqtt2prometheus.yaml", fmt.Sprintf(exporterConfig, mqttAddr))
	if err != nil {
		return nil, err
	}
	exHost, exPort, _ := net.SplitHostPort(exporterAddr)
	ex, err := benchkit.StartProcess("mqtt2prometheus", b.cfg.Exporter, []string{"-config", exConf, "-listen-address", exHost, "-listen-port", exPort, "-log-level", "warn"}, filepath.Join(dir, "mqtt2prometheus.log"))
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, stopPeer(ex)) }()
	if err := waitListening(ctx, ex, exporterAddr); err != nil {
		return nil, err
	}

	promConf, err := write("prometheus.yml", fmt.Sprintf(prometheusConfig, b.cfg.ScrapeInterval, exporterAddr))
	if err != nil {
		return nil, err
	}
	prom, err := benchkit.StartProcess("prometheus", b.cfg.Prometheus, []string{
		"--config.file=" + promConf, "--storage.tsdb.path=" + filepath.Join(dir, "prometheus-data"),
		"--web.listen-address=" + promAddr, "--log.level=warn",
	}, filepath.Join(dir, "prometheus.log"))
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, stopPeer(prom)) }()
	if err := benchkit.WaitReady(ctx, prom, "http://"+promAddr+"/-/ready", time.Minute); err != nil {
		return nil, err
	}
	api := benchkit.QueryAPI{Client: b.client, URL: "http://" + promAddr}
	// Prometheus starts scraping some seconds after it is ready.
	if err := waitScraped(ctx, api); err != nil {
		return nil, err
	}

	s, err := connectSwarm(mqttAddr, "", "", "m2p", b.cfg.ComparePublishers)
	if err != nil {
		return nil, err
	}
	defer s.close()
	r := s.publish(ctx, b.cfg.Duration, b.cfg.Window,
		func(i int) string { return fmt.Sprintf("bench/p%d", i) },
		func(_ int, seq int64) []byte { return fmt.Appendf(nil, `{"value": %d}`, seq) })
	// Two more scrapes, so the last values are in too.
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(2*b.cfg.ScrapeInterval + 500*time.Millisecond):
	}
	stored, err := instant(ctx, api, `sum(count_over_time(bench_value[1h]))`)
	if err != nil {
		return nil, err
	}
	return &Comparison{stepResult: r, Stored: stored}, nil
}

// waitScraped waits until Prometheus scraped mqtt2prometheus once.
func waitScraped(ctx context.Context, api benchkit.QueryAPI) error {
	deadline := time.Now().Add(time.Minute)
	for {
		n, err := instant(ctx, api, `count(up{job="mqtt2prometheus"} == 1)`)
		if err != nil || n > 0 {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New("prometheus did not scrape mqtt2prometheus within a minute")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stopPeer stops a peer; mosquitto and mqtt2prometheus end on SIGTERM by
// the signal, which is no error here.
func stopPeer(p *benchkit.Process) error {
	err := p.Stop(time.Minute)
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	return err
}

// waitListening waits until addr accepts connections or p exits.
func waitListening(ctx context.Context, p *benchkit.Process, addr string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		if err := p.Exited(); err != nil {
			return err
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after a minute: %w", addr, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (b *bench) printCompare(c *Comparison) {
	b.printf("mqtt2prometheus %5d publishers on mosquitto: %8d published, %8d acked in %5.1fs: %9.0f acked msg/s; %8d samples in Prometheus's TSDB (scrape every %s): lost %d of %d (%.1f%%)\n",
		c.Publishers, c.Published, c.Acked, c.Elapsed.Seconds(), c.AckedPerSecond(), c.Stored, b.cfg.ScrapeInterval,
		max(0, c.Acked-c.Stored), c.Acked, 100*float64(max(0, c.Acked-c.Stored))/float64(max(1, c.Acked)))
}
