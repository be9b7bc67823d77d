package pipebench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

// Point is one reading during a measurement.
type Point struct {
	At time.Duration // since the load started
	// Sent is the samples the server accepted so far (2xx answers).
	Sent   int64
	Failed int64
	// Stored and Rejected are the server's own counters of samples.
	Stored, Rejected float64
	// Lags are the consumers' lags in records (tmaflow only), in the
	// order of consumers.
	Lags []int64
	// Handled is each consumer's handler time so far.
	Handled []handled
	RSS     int64
	CPU     time.Duration
}

// handled is the sum and count of a handler-duration histogram.
type handled struct {
	seconds, count float64
}

// Measurement is one load run and what was read during it.
type Measurement struct {
	Name string
	// Offered is the scheduled rate in samples/s, 0 for closed loop.
	Offered    float64
	DataItems  int
	Warmup     time.Duration
	Points     []Point
	FirstError error

	profile     string // CPU profile file, "" when none
	profileWall time.Duration
}

// window is the first and last point after the warm-up.
func (m *Measurement) window() (Point, Point) {
	if len(m.Points) == 0 {
		return Point{}, Point{}
	}
	first := m.Points[0]
	for _, p := range m.Points {
		if p.At >= m.Warmup {
			first = p
			break
		}
	}
	return first, m.Points[len(m.Points)-1]
}

func (m *Measurement) windowPoints() []Point {
	first, _ := m.window()
	for i, p := range m.Points {
		if p.At == first.At {
			return m.Points[i:]
		}
	}
	return nil
}

func (m *Measurement) seconds() float64 {
	a, b := m.window()
	return (b.At - a.At).Seconds()
}

func (m *Measurement) rate(f func(Point) float64) float64 {
	a, b := m.window()
	s := m.seconds()
	if s <= 0 {
		return 0
	}
	return (f(b) - f(a)) / s
}

// Stored is the samples/s the server's TSDB appended in the window.
func (m *Measurement) Stored() float64 { return m.rate(func(p Point) float64 { return p.Stored }) }

// Sent is the samples/s the server accepted in the window.
func (m *Measurement) Sent() float64 { return m.rate(func(p Point) float64 { return float64(p.Sent) }) }

// Rejected is the samples/s the persister refused in the window.
func (m *Measurement) Rejected() float64 {
	return m.rate(func(p Point) float64 { return p.Rejected })
}

// CPU is the server's CPU use in the window, in cores.
func (m *Measurement) CPU() float64 {
	return m.rate(func(p Point) float64 { return p.CPU.Seconds() })
}

// CPUPerSample is the server's CPU per stored sample in the window, 0
// when nothing was stored.
func (m *Measurement) CPUPerSample() time.Duration {
	stored := m.Stored()
	if stored <= 0 {
		return 0
	}
	return time.Duration(m.CPU() / stored * float64(time.Second))
}

// Failed is the requests that failed in the window.
func (m *Measurement) Failed() int64 {
	a, b := m.window()
	return b.Failed - a.Failed
}

// HandlerMean is consumer i's mean time per batch in the window.
func (m *Measurement) HandlerMean(i int) time.Duration {
	a, b := m.window()
	if len(a.Handled) <= i || len(b.Handled) <= i || b.Handled[i].count == a.Handled[i].count {
		return 0
	}
	mean := (b.Handled[i].seconds - a.Handled[i].seconds) / (b.Handled[i].count - a.Handled[i].count)
	return time.Duration(mean * float64(time.Second))
}

// LagSlope is the growth of the total consumer lag in the window, in
// records/s, fitted by least squares over every point so that the commit
// interval's sawtooth does not decide.
func (m *Measurement) LagSlope() float64 {
	pts := m.windowPoints()
	if len(pts) < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for _, p := range pts {
		x, y := p.At.Seconds(), float64(sum(p.Lags))
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	n := float64(len(pts))
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

// LagRange is the least and most total lag in the window.
func (m *Measurement) LagRange() (lo, hi int64) {
	for i, p := range m.windowPoints() {
		l := sum(p.Lags)
		if i == 0 || l < lo {
			lo = l
		}
		hi = max(hi, l)
	}
	return lo, hi
}

// RSSRange is the least and most resident memory in the window.
func (m *Measurement) RSSRange() (lo, hi int64) {
	for i, p := range m.windowPoints() {
		if i == 0 || p.RSS < lo {
			lo = p.RSS
		}
		hi = max(hi, p.RSS)
	}
	return lo, hi
}

// Sustained reports whether tmaflow kept up with an open-loop rate: the
// monitor accepted what was offered, the TSDB stored what was accepted
// (within 3%), and the consumer lag grew by less than one second of input
// over the window.
func (m *Measurement) Sustained() bool {
	if m.Offered <= 0 {
		return false
	}
	msgs := m.Offered / float64(m.DataItems)
	return m.Sent() >= 0.97*m.Offered &&
		m.Stored() >= 0.97*m.Sent() &&
		m.LagSlope()*m.seconds() <= msgs
}

func sum(xs []int64) int64 {
	var s int64
	for _, x := range xs {
		s += x
	}
	return s
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// printRun prints one measurement's summary line.
func (b *bench) printRun(m *Measurement) {
	lo, hi := m.LagRange()
	rlo, rhi := m.RSSRange()
	offered := "max"
	if m.Offered > 0 {
		offered = fmt.Sprintf("%.0f", m.Offered)
	}
	verdict := ""
	if m.Offered > 0 {
		verdict = "lag bounded: sustained"
		if !m.Sustained() {
			verdict = "NOT sustained"
		}
	}
	b.printf("%-12s offered %s samples/s, accepted %.0f/s, stored %.0f/s, lag %d–%d records (slope %+.1f/s), RSS %.0f–%.0f MiB, CPU %.2f cores %s\n",
		m.Name, offered, m.Sent(), m.Stored(), lo, hi, m.LagSlope(), mib(rlo), mib(rhi), m.CPU(), verdict)
	if pts := m.windowPoints(); len(pts) > 0 && len(pts[0].Lags) > 0 {
		line := ""
		for i, c := range consumers {
			line += fmt.Sprintf(" %s %d→%d (batch mean %s),", c.Name, pts[0].Lags[i], pts[len(pts)-1].Lags[i], m.HandlerMean(i).Round(time.Microsecond))
		}
		b.printf("%-12s lag over the window:%s records\n", m.Name, strings.TrimSuffix(line, ","))
	}
	if m.FirstError != nil {
		b.printf("%-12s %d requests failed, first: %v\n", m.Name, m.Failed(), m.FirstError)
	}
	if r := m.Rejected(); r > 0 {
		b.printf("%-12s persister rejected %.0f samples/s (dead-lettered): timestamps collide?\n", m.Name, r)
	}
}

// printReport prints the summary, the timelines and the profile.
func (b *bench) printReport(rep Report) {
	b.printf("\n== summary: tmaflow on %s ==\n", benchkit.BusTitle(rep.busKind()))
	tw := tabwriter.NewWriter(b.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	_, _ = fmt.Fprintln(tw, "run\toffered/s\taccepted/s\tstored/s\tlag min–max (records)\tlag slope/s\tRSS MiB\tCPU cores\tsustained\t")
	all := append(append([]*Measurement{}, rep.Attempts...), rep.prometheusRuns()...)
	for _, m := range all {
		lo, hi := m.LagRange()
		rlo, rhi := m.RSSRange()
		offered, sus, lag, slope := "max", "", "", ""
		if m.Offered > 0 {
			offered = fmt.Sprintf("%.0f", m.Offered)
			sus = fmt.Sprint(m.Sustained())
			lag, slope = fmt.Sprintf("%d–%d", lo, hi), fmt.Sprintf("%+.1f", m.LagSlope())
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%s\t%s\t%.0f–%.0f\t%.2f\t%s\t\n",
			m.Name, offered, m.Sent(), m.Stored(), lag, slope, mib(rlo), mib(rhi), m.CPU(), sus)
	}
	_ = tw.Flush()
	b.printf("series: %d (stored by tmaflow, listed by its query API, remote-written to Prometheus with the same labels)\n", rep.Series)
	if rep.DrainSamplesPerSecond > 0 {
		b.printf("back half alone (labeler + persister draining %d records, no ingest): %.0f samples/s\n", rep.DrainLag, rep.DrainSamplesPerSecond)
	}
	if rep.Best != nil {
		b.printf("\ntmaflow sustained: %.0f samples/s stored (%.0f messages/s)\n", rep.Best.Stored(), rep.Best.Stored()/float64(rep.Best.DataItems))
		printTimeline(b.out, rep.Best)
	} else {
		b.printf("\ntmaflow sustained none of the rates tried\n")
	}
	for _, p := range rep.prometheusRuns() {
		b.printf("\n%s (remote write, closed loop): %.0f samples/s stored\n", p.Name, p.Stored())
		if !b.timelinePrinted[p] {
			printTimeline(b.out, p)
			b.timelinePrinted[p] = true
		}
	}
	if r := rep.Ratio(); r > 0 {
		b.printf("\nratio tmaflow/%s: %.2f\n", rep.Prometheus.Name, r)
	}
	if r := rep.RatioSameShape(); r > 0 {
		b.printf("ratio tmaflow/%s (requests of the same size): %.2f\n", rep.PrometheusSameShape.Name, r)
	}
	if bud, ok := rep.Budget(); ok {
		b.printBudget(bud)
	}
	if p := rep.Profile; p != nil {
		benchkit.PrintProfile(b.out, p)
	}
}

// printTimeline prints every reading of a measurement: the stored rate
// between readings, the lags, RSS.
func printTimeline(out io.Writer, m *Measurement) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "t\tstored/s\t"
	if len(m.Points) > 0 {
		for i := range m.Points[0].Lags {
			head += consumers[i].Name + " lag\t"
		}
	}
	_, _ = fmt.Fprintln(tw, head+"RSS MiB\tCPU cores\t")
	for i, p := range m.Points {
		if i == 0 {
			continue
		}
		prev := m.Points[i-1]
		dt := (p.At - prev.At).Seconds()
		mark := ""
		if p.At <= m.Warmup {
			mark = " (warm-up)"
		}
		line := fmt.Sprintf("%.0fs%s\t%.0f\t", p.At.Seconds(), mark, (p.Stored-prev.Stored)/dt)
		for _, l := range p.Lags {
			line += fmt.Sprintf("%d\t", l)
		}
		_, _ = fmt.Fprintf(tw, "%s%.0f\t%.2f\t\n", line, mib(p.RSS), (p.CPU-prev.CPU).Seconds()/dt)
	}
	_ = tw.Flush()
}

// printBuses prints tmaflow's sustained figures on every bus side by
// side: the same load, request sizes and Prometheus, in one run.
func (b *bench) printBuses(reps []Report) {
	b.printf("\n== tmaflow by bus (same run, same load and request sizes) ==\n")
	tw := tabwriter.NewWriter(b.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "bus\tsustained stored samples/s\tmessages/s\tCPU cores\tCPU/sample\tbus CPU/sample\tback half alone samples/s\tRSS MiB\t"
	if p := reps[0].Prometheus; p != nil {
		head += "ratio to " + p.Name + "\t"
	}
	if p := reps[0].PrometheusSameShape; p != nil {
		head += "ratio to " + p.Name + "\t"
	}
	_, _ = fmt.Fprintln(tw, head)
	for _, rep := range reps {
		line := rep.busKind() + "\t"
		if m := rep.Best; m != nil {
			_, rss := m.RSSRange()
			bus := "-"
			if bud, ok := rep.Budget(); ok {
				bus = micros(bud.Bus)
			}
			line += fmt.Sprintf("%.0f\t%.0f\t%.2f\t%s\t%s\t", m.Stored(), m.Stored()/float64(m.DataItems), m.CPU(), micros(m.CPUPerSample()), bus)
			line += fmt.Sprintf("%s\t%.0f\t", orDash(rep.DrainSamplesPerSecond), mib(rss))
		} else {
			line += "none sustained\t-\t-\t-\t-\t" + orDash(rep.DrainSamplesPerSecond) + "\t-\t"
		}
		if rep.Prometheus != nil {
			line += orDashRatio(rep.Ratio()) + "\t"
		}
		if rep.PrometheusSameShape != nil {
			line += orDashRatio(rep.RatioSameShape()) + "\t"
		}
		_, _ = fmt.Fprintln(tw, line)
	}
	_ = tw.Flush()
	b.printf("CPU/sample is the tmaflow process's CPU over the stored samples of its sustained rate; bus CPU/sample is the share of it\n" +
		"its CPU profile gives the embedded broker or server and the clients (kafka-go or nats.go and pkg/bus).\n")
	for _, rep := range reps {
		b.printf("%s acknowledges: %s\n", rep.busKind(), benchkit.Bus{Kind: rep.busKind()}.Durability(b.cfg.TmaflowArgs))
	}
	b.printf("(flags after -- go to tmaflow on every bus: -- -broker.sync-writes, or -- -nats.sync-interval=2m, compares them at the same durability)\n")
}

func orDash(v float64) string {
	if v <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}

func orDashRatio(v float64) string {
	if v <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}
