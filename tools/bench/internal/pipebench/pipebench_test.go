package pipebench

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

func points(lags ...int64) []Point {
	out := make([]Point, len(lags))
	for i, l := range lags {
		out[i] = Point{
			At:     time.Duration(i) * time.Second,
			Sent:   int64(i) * 1000,
			Stored: float64(i) * 1000,
			Lags:   []int64{l, 0},
		}
	}
	return out
}

func TestSustained(t *testing.T) {
	for _, tc := range []struct {
		name    string
		offered float64
		mutate  func([]Point)
		want    bool
	}{
		{"steady lag", 1000, nil, true},
		{"closed loop is never sustained", 0, nil, false},
		{"lag grows by more than a second of input", 1000, func(ps []Point) {
			for i := range ps {
				ps[i].Lags[1] = int64(i) * 20
			}
		}, false},
		{"stores less than accepted", 1000, func(ps []Point) {
			for i := range ps {
				ps[i].Stored = float64(i) * 900
			}
		}, false},
		{"accepts less than offered", 1500, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := points(5, 7, 3, 6, 4, 5, 7, 3, 5, 6, 4)
			if tc.mutate != nil {
				tc.mutate(ps)
			}
			m := &Measurement{Offered: tc.offered, DataItems: 20, Warmup: 2 * time.Second, Points: ps}
			require.Equal(t, tc.want, m.Sustained())
		})
	}
}

func TestMeasurementWindow(t *testing.T) {
	m := &Measurement{Warmup: 2 * time.Second, Points: points(10, 10, 0, 4, 8)}
	m.Points[4].RSS, m.Points[2].RSS, m.Points[3].RSS = 300, 100, 200
	m.Points[0].RSS = 1 // warm-up: not in the window
	require.InDelta(t, 1000, m.Stored(), 1e-9)
	require.InDelta(t, 4, m.LagSlope(), 1e-9)
	lo, hi := m.LagRange()
	require.Equal(t, []int64{0, 8}, []int64{lo, hi})
	lo, hi = m.RSSRange()
	require.Equal(t, []int64{100, 300}, []int64{lo, hi})
}

func TestAttributeByService(t *testing.T) {
	frames := [][]string{
		{"internal/runtime/syscall/linux.Syscall6", "syscall.Syscall", "github.com/twmb/franz-go/pkg/kfake.(*Cluster).run"},
		{"runtime.mallocgc", "github.com/tmaflow/tmaflow/pkg/samples.Encode",
			"github.com/tmaflow/tmaflow/services/labeler/labeler.(*Service).publish",
			"github.com/ThreeDotsLabs/watermill/message.(*handler).handleMessage"},
	}
	require.Equal(t, "embedded broker (kfake)", benchkit.Attribute(frames[0], byService(benchkit.BusKafka), true, "other"))
	require.Equal(t, "labeler", benchkit.Attribute(frames[1], byService(benchkit.BusKafka), true, "other"), "the service wins over the router that calls it")

	nats := [][]string{
		{"internal/runtime/syscall/linux.Syscall6", "github.com/nats-io/nats-server/v2/server.(*fileStore).storeRawMsg", "github.com/nats-io/nats-server/v2/server.(*client).readLoop"},
		{"runtime.mallocgc", "github.com/nats-io/nats.go.(*Conn).readLoop"},
		{"github.com/tmaflow/tmaflow/pkg/bus/nats.(*partitionConsumer).run"},
		{"github.com/nats-io/nats.go.(*Conn).publish", "github.com/tmaflow/tmaflow/pkg/bus/nats.(*Publisher).Publish",
			"github.com/tmaflow/tmaflow/services/monitor/monitor.(*Service).ingest"},
	}
	parts := byService(benchkit.BusNATS)
	require.Equal(t, "embedded NATS server (nats-server)", benchkit.Attribute(nats[0], parts, true, "other"))
	require.Equal(t, "NATS clients (nats.go: publish, fetch)", benchkit.Attribute(nats[1], parts, true, "other"))
	require.Equal(t, "NATS clients (nats.go: publish, fetch)", benchkit.Attribute(nats[2], parts, true, "other"))
	require.Equal(t, "monitor (HTTP ingest)", benchkit.Attribute(nats[3], parts, true, "other"), "a publish belongs to the service that publishes")
	require.Equal(t, "embedded NATS server (nats-server)", benchkit.Attribute(nats[0], benchkit.ByWork, false, "other"))
	require.Equal(t, "nats.go client", benchkit.Attribute(nats[2], benchkit.ByWork, false, "other"))
}

func TestRatios(t *testing.T) {
	stored := func(perSecond float64) *Measurement {
		ps := points(0, 0, 0, 0, 0)
		for i := range ps {
			ps[i].Stored = float64(i) * perSecond
		}
		return &Measurement{DataItems: 20, Points: ps}
	}
	for _, tc := range []struct {
		name            string
		rep             Report
		ratio, sameSize float64
	}{
		{"both", Report{Best: stored(1000), Prometheus: stored(4000), PrometheusSameShape: stored(1250)}, 0.25, 0.8},
		{"batched only", Report{Best: stored(1000), Prometheus: stored(2000)}, 0.5, 0},
		{"nothing sustained", Report{Prometheus: stored(2000), PrometheusSameShape: stored(1000)}, 0, 0},
		{"Prometheus stored nothing", Report{Best: stored(1000), Prometheus: stored(0)}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.InDelta(t, tc.ratio, tc.rep.Ratio(), 1e-9)
			require.InDelta(t, tc.sameSize, tc.rep.RatioSameShape(), 1e-9)
		})
	}
}

func TestBudget(t *testing.T) {
	run := measured
	tmaflow := run("rate 2", 100_000, 1.5) // 15 µs per sample
	server, clients := benchkit.BusParts(benchkit.BusKafka)
	partBroker, partKafkaClients := server.Name, clients.Name
	profile := &benchkit.ProfileSummary{Total: 10 * time.Second, Services: []benchkit.Share{
		{Name: partKafkaClients, CPU: 4 * time.Second},
		{Name: "persister", CPU: 3 * time.Second},
		{Name: partBroker, CPU: 2 * time.Second},
		{Name: "labeler", CPU: time.Second},
	}}
	rep := Report{
		Best:                tmaflow,
		Prometheus:          run("prometheus-2000", 500_000, 1.5), // 3 µs
		PrometheusSameShape: run("prometheus-20", 150_000, 1.5),   // 10 µs
		Profile:             profile,
		profiled:            tmaflow,
	}
	bud, ok := rep.Budget()
	require.True(t, ok)
	require.Equal(t, "rate 2", bud.Run)
	require.InDelta(t, 15*time.Microsecond, bud.PerSample, 1)
	require.Equal(t, []string{partKafkaClients, "persister", partBroker, "labeler"}, names(bud.Parts))
	require.InDelta(t, 6*time.Microsecond, bud.Parts[0].PerSample, 1)
	require.InDelta(t, 1.5*float64(time.Microsecond), bud.Parts[3].PerSample, 1)
	require.Equal(t, benchkit.BusKafka, bud.BusKind)
	require.InDelta(t, 9*time.Microsecond, bud.Bus, 2, "clients and broker")
	require.Equal(t, []string{"prometheus-2000", "prometheus-20"}, names(bud.Prometheus))
	require.InDelta(t, 3*time.Microsecond, bud.Prometheus[0].PerSample, 1)
	require.InDelta(t, 10*time.Microsecond, bud.Prometheus[1].PerSample, 1)
	require.InDelta(t, 0.2, bud.Prometheus[0].StoredRatio, 1e-9)
	require.InDelta(t, 100.0/150, bud.Prometheus[1].StoredRatio, 1e-9)

	var out strings.Builder
	(&bench{out: &out}).printBudget(bud)
	require.Contains(t, out.String(), "Kafka (clients + embedded broker) takes 9.0 µs of tmaflow's 15.0 µs per sample; the rest takes 6.0 µs.")
	require.Contains(t, out.String(), "prometheus-20 spends 10.0 µs on a whole sample: the CPU allows tmaflow a ratio of 0.67 to it (stored: 0.67).")

	t.Run("on NATS the server and its clients are the bus", func(t *testing.T) {
		server, clients := benchkit.BusParts(benchkit.BusNATS)
		rep := rep
		rep.Bus = benchkit.BusNATS
		rep.Profile = &benchkit.ProfileSummary{Total: 10 * time.Second, Services: []benchkit.Share{
			{Name: clients.Name, CPU: 3 * time.Second},
			{Name: "persister", CPU: 3 * time.Second},
			{Name: server.Name, CPU: 1 * time.Second},
			{Name: partKafkaClients, CPU: 3 * time.Second}, // not the bus that ran
		}}
		bud, ok := rep.Budget()
		require.True(t, ok)
		require.Equal(t, benchkit.BusNATS, bud.BusKind)
		require.InDelta(t, 6*time.Microsecond, bud.Bus, 2)
		var out strings.Builder
		(&bench{out: &out}).printBudget(bud)
		require.Contains(t, out.String(), "NATS (clients + embedded nats-server) takes 6.0 µs of tmaflow's 15.0 µs per sample; the rest takes 9.0 µs.")
	})
	t.Run("without a profile", func(t *testing.T) {
		rep := rep
		rep.Profile = nil
		_, ok := rep.Budget()
		require.False(t, ok)
	})
	t.Run("profiled run stored nothing", func(t *testing.T) {
		rep := rep
		rep.profiled = run("rate 3", 0, 1.5)
		_, ok := rep.Budget()
		require.False(t, ok)
	})
}

// measured is a measurement storing stored samples/s on cores of CPU in
// 100 MiB.
func measured(name string, stored, cores float64) *Measurement {
	ps := points(0, 0, 0, 0, 0)
	for i := range ps {
		ps[i].Stored = float64(i) * stored
		ps[i].CPU = time.Duration(float64(i) * cores * float64(time.Second))
		ps[i].RSS = 100 << 20
	}
	return &Measurement{Name: name, DataItems: 20, Points: ps}
}

func names(parts []BudgetPart) []string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = p.Name
	}
	return out
}

// TestPrintBuses prints the buses side by side with the same Prometheus.
func TestPrintBuses(t *testing.T) {
	run := measured
	prom := run("prometheus-2000", 200_000, 1)
	kafka, nats := run("rate 2", 100_000, 1.5), run("rate 3", 50_000, 1)
	reps := []Report{
		{Bus: benchkit.BusKafka, Best: kafka, Prometheus: prom, DrainSamplesPerSecond: 150_000},
		{Bus: benchkit.BusNATS, Best: nats, Prometheus: prom},
		{Bus: benchkit.BusNATS, Prometheus: prom},
	}
	var out strings.Builder
	(&bench{out: &out}).printBuses(reps)
	lines := strings.Split(strings.TrimPrefix(out.String(), "\n"), "\n")
	require.Contains(t, lines[1], "ratio to prometheus-2000")
	require.Regexp(t, `kafka\s+100000\s+5000\s+1\.50\s+15\.0 µs\s+-\s+150000\s+100\s+0\.50`, lines[2])
	require.Regexp(t, `nats\s+50000\s+2500\s+1\.00\s+20\.0 µs\s+-\s+-\s+100\s+0\.25`, lines[3])
	require.Regexp(t, `nats\s+none sustained`, lines[4])
}

func TestParseBusesFlag(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.RegisterFlags(fs)
	require.Equal(t, []string{benchkit.BusKafka}, c.Buses, "kafka by default")
	require.NoError(t, fs.Parse([]string{"-bus=both"}))
	require.Equal(t, []string{benchkit.BusKafka, benchkit.BusNATS}, c.Buses)
	require.NoError(t, fs.Parse([]string{"-bus=nats"}))
	require.Equal(t, []string{benchkit.BusNATS}, c.Buses)
	fs.SetOutput(io.Discard)
	require.ErrorContains(t, fs.Parse([]string{"-bus=pulsar"}), `bus "pulsar"`)
}
