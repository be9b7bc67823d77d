package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/broker"
	"github.com/tmaflow/tmaflow/pkg/broker/brokertest"
	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/bus/kafka"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/samples"
)

// envMain makes the test binary run the persister's main instead of the
// tests, so a test can kill a real persister process.
const envMain = "PERSISTER_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envMain) == "1" {
		if err := runMain(context.Background(), os.Args[1:], os.Stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "persister:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"help", []string{"-h"}, flag.ErrHelp.Error()},
		{"no brokers", []string{}, "kafka.brokers: at least one broker is required"},
		{"kafka group", []string{"-kafka.brokers=127.0.0.1:1", "-kafka.consumer-group=x"}, "kafka.consumer-group is not used by the persister"},
		{"same groups", []string{"-kafka.brokers=127.0.0.1:1", "-remote-write.url=http://x/api/v1/write", "-remote-write.consumer-group=tmaflow-persister"}, "remote-write.consumer-group must differ from consumer-group"},
		{"bad url", []string{"-kafka.brokers=127.0.0.1:1", "-remote-write.url=ftp://x"}, `remote-write.url "ftp://x": want an http(s) URL`},
		{"unknown flag", []string{"-nope"}, "flag provided but not defined: -nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := runMain(context.Background(), tt.args, &stderr)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// proc is a persister process.
type proc struct {
	cmd    *exec.Cmd
	addr   chan string
	exited chan error
}

func startPersister(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-log.format=json", "-listen-address=127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), envMain+"=1")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, addr: make(chan string, 1), exited: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) != nil {
				t.Logf("persister: %s", sc.Text())
				continue
			}
			if rec["msg"] == "persister listening" {
				p.addr <- rec["addr"].(string)
			}
			if lvl, _ := rec["level"].(string); lvl == "ERROR" || lvl == "WARN" {
				t.Logf("persister: %s", sc.Text())
			}
		}
		p.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	return p
}

func (p *proc) waitAddr(t *testing.T) string {
	t.Helper()
	select {
	case a := <-p.addr:
		return "http://" + a
	case err := <-p.exited:
		t.Fatalf("persister exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("persister did not start listening")
	}
	return ""
}

func (p *proc) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-p.exited:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("persister did not exit")
	}
	return nil
}

// samplesMetric reads tmaflow_persister_samples_total by outcome; nil
// while the process cannot be reached.
func samplesMetric(url string) map[string]float64 {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return nil
	}
	defer func() { _ = resp.Body.Close() }()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil
	}
	out := map[string]float64{}
	if mf, ok := mfs["tmaflow_persister_samples_total"]; ok {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// countSamples opens the TSDB and counts the samples a query sees: merged
// and deduplicated, so a sample stored twice counts once, as in any query.
func countSamples(t *testing.T, dir string) (total int, perSeries map[string]int) {
	t.Helper()
	db, err := tsdb.OpenDBReadOnly(dir, "", nil)
	require.NoError(t, err)
	defer func() { require.NoError(t, db.Close()) }()
	q, err := db.Querier(0, 1<<62)
	require.NoError(t, err)
	defer func() { require.NoError(t, q.Close()) }()
	perSeries = map[string]int{}
	set := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+"))
	for set.Next() {
		it := set.At().Iterator(nil)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			total++
			perSeries[set.At().Labels().Get("resource")]++
		}
		require.NoError(t, it.Err())
	}
	require.NoError(t, set.Err())
	return total, perSeries
}

// TestCrashMidStream kills the persister with SIGKILL while N samples
// stream into topic-metrics over the embedded Kafka broker, restarts it on
// the same TSDB directory, and proves that exactly N distinct samples are
// stored — although some were delivered, and appended, twice.
func TestCrashMidStream(t *testing.T) {
	const (
		resources       = 8
		batches         = 240
		samplesPerBatch = 50
		n               = batches * samplesPerBatch
	)
	bcfg := brokerConfig()
	b, err := broker.Start(bcfg, nil)
	require.NoError(t, err)
	t.Cleanup(b.Close)
	brokers := b.Addrs()[0]

	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = b.Addrs()
	pub, err := kafka.NewPublisher(kcfg, nil, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, pub.Close()) })

	dir := t.TempDir()
	args := []string{
		"-kafka.brokers=" + brokers,
		"-tsdb.path=" + dir,
		"-consumer-group=crash-test",
		"-kafka.commit-interval=300ms",
		"-kafka.heartbeat-interval=500ms",
		// The broker's minimum: the restarted member waits this long for
		// the killed one to be evicted.
		"-kafka.session-timeout=6s",
		"-kafka.rebalance-timeout=6s",
		"-kafka.fetch-max-wait=100ms",
	}
	first := startPersister(t, args...)
	url1 := first.waitAddr(t)

	// Produce the stream: each batch one series (resource i%8) with 50
	// consecutive seconds; a series' batches follow each other in time.
	start := time.Now().Add(-20 * time.Minute).Truncate(time.Second)
	var produced atomic.Int64
	produceErr := make(chan error, 1)
	go func() {
		for i := range batches {
			r := i % resources
			s := samples.Series{Labels: []samples.Label{{Name: "__name__", Value: "crash_test_value"}, {Name: "resource", Value: fmt.Sprint(r)}}}
			for j := range samplesPerBatch {
				sec := (i/resources)*samplesPerBatch + j
				s.Samples = append(s.Samples, samples.Sample{TimestampMs: start.Add(time.Duration(sec) * time.Second).UnixMilli(), Value: float64(i*samplesPerBatch + j)})
			}
			msg := message.NewMessage(watermill.NewUUID(), samples.Encode(nil, &samples.Batch{Tenant: "acme", Source: samples.SourceTMA, Series: []samples.Series{s}}))
			msg.Metadata.Set(contract.HeaderTenant, "acme")
			bus.SetKey(msg, []byte("acme/"+fmt.Sprint(r)))
			if err := pub.Publish(contract.TopicMetrics, msg); err != nil {
				produceErr <- err
				return
			}
			produced.Add(1)
			time.Sleep(3 * time.Millisecond)
		}
		produceErr <- nil
	}()

	// Kill once a good part is stored, the stream still runs, some of it
	// is committed and some appended batches are not yet (so the restart
	// delivers them again): appended counts samples, offsets batches.
	partitions := make([]int, bcfg.Partitions)
	for i := range partitions {
		partitions[i] = i
	}
	committed := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		resp, err := (&kafkago.Client{Addr: kafkago.TCP(brokers)}).OffsetFetch(ctx, &kafkago.OffsetFetchRequest{
			GroupID: "crash-test", Topics: map[string][]int{contract.TopicMetrics: partitions},
		})
		if err != nil {
			return math.MaxInt64
		}
		var sum int64
		for _, p := range resp.Topics[contract.TopicMetrics] {
			sum += max(p.CommittedOffset, 0)
		}
		return sum
	}
	require.Eventually(t, func() bool {
		appended := int64(samplesMetric(url1)["appended"])
		c := committed()
		return appended >= n/4 && c > 0 && appended/samplesPerBatch-c >= 3
	}, 30*time.Second, 5*time.Millisecond)
	require.NoError(t, first.cmd.Process.Signal(syscall.SIGKILL))
	_ = first.wait(t)
	require.Less(t, produced.Load(), int64(batches), "killed mid-stream")
	afterCrash, _ := countSamples(t, dir)
	t.Logf("killed with %d of %d samples stored, %d of %d batches produced", afterCrash, n, produced.Load(), batches)
	require.NoError(t, <-produceErr)

	second := startPersister(t, args...)
	url2 := second.waitAddr(t)
	var m map[string]float64
	require.Eventually(t, func() bool {
		m = samplesMetric(url2)
		return afterCrash+int(m["appended"]+m["stored"]) >= n && readyOK(url2)
	}, 60*time.Second, 20*time.Millisecond)
	// Nothing more comes once caught up.
	time.Sleep(500 * time.Millisecond)
	m = samplesMetric(url2)
	require.NoError(t, second.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, second.wait(t))

	redelivered := afterCrash + int(m["appended"]+m["stored"]) - n
	t.Logf("second run: %v; %d samples delivered twice", m, redelivered)
	require.Positive(t, redelivered, "the crash left acknowledged but uncommitted batches to deliver again")
	total, perSeries := countSamples(t, dir)
	require.Equal(t, n, total, "exactly N distinct samples")
	for r := range resources {
		require.Equal(t, n/resources, perSeries[fmt.Sprint(r)], "resource %d", r)
	}
	dead, err := brokertest.ReadAll(context.Background(), brokers, contract.TopicDLQ)
	require.NoError(t, err)
	require.Empty(t, dead, "re-delivery dead-letters nothing")
}

func readyOK(url string) bool {
	resp, err := http.Get(url + "/-/ready")
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func brokerConfig() broker.Config {
	fs := flag.NewFlagSet("broker", flag.ContinueOnError)
	var c broker.Config
	c.RegisterFlags(fs)
	c.ListenAddress = "127.0.0.1:0"
	c.Partitions = 4
	return c
}
