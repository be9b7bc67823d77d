package pipebench

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

// Budget is tmaflow's server CPU per stored sample in its profiled run,
// split by service in the proportions of the profile, next to what each
// Prometheus run spends per stored sample. Both saturate the same cores,
// so the stored ratio follows the inverse ratio of these: this is what
// limits it.
type Budget struct {
	Run       string
	PerSample time.Duration
	// Parts is PerSample by service, largest first.
	Parts []BudgetPart
	// BusKind is the bus tmaflow ran on; Bus is the parts that carry
	// records on it: the clients and the embedded broker or server.
	BusKind string
	Bus     time.Duration
	// Prometheus is each Prometheus run's CPU per stored sample.
	Prometheus []BudgetPart
}

// BudgetPart is CPU per stored sample of one part or run.
type BudgetPart struct {
	Name      string
	PerSample time.Duration
	// StoredRatio is tmaflow's sustained rate over this Prometheus run's
	// (0: no sustained rate); Prometheus runs only.
	StoredRatio float64
}

// Budget is the CPU budget; false without a profiled tmaflow run that
// stored samples.
func (r Report) Budget() (Budget, bool) {
	m, p := r.profiled, r.Profile
	if m == nil || p == nil || p.Total <= 0 || m.CPUPerSample() <= 0 {
		return Budget{}, false
	}
	b := Budget{Run: m.Name, PerSample: m.CPUPerSample(), BusKind: r.busKind()}
	server, clients := benchkit.BusParts(b.BusKind)
	for _, s := range p.Services {
		part := BudgetPart{Name: s.Name, PerSample: time.Duration(float64(b.PerSample) * s.CPU.Seconds() / p.Total.Seconds())}
		b.Parts = append(b.Parts, part)
		if s.Name == server.Name || s.Name == clients.Name {
			b.Bus += part.PerSample
		}
	}
	for _, pr := range r.prometheusRuns() {
		if c := pr.CPUPerSample(); c > 0 {
			b.Prometheus = append(b.Prometheus, BudgetPart{Name: pr.Name, PerSample: c, StoredRatio: r.ratioTo(pr)})
		}
	}
	return b, true
}

// busShare names the bus parts of a budget.
func busShare(kind string) string {
	if kind == benchkit.BusNATS {
		return "NATS (clients + embedded nats-server)"
	}
	return "Kafka (clients + embedded broker)"
}

func micros(d time.Duration) string {
	return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
}

// printBudget prints the budget and the ratio the CPU alone allows.
func (b *bench) printBudget(bud Budget) {
	b.printf("\n== server CPU per stored sample (what limits the ratio) ==\n")
	tw := tabwriter.NewWriter(b.out, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintf(tw, "  tmaflow, %s\t%7s\n", bud.Run, micros(bud.PerSample))
	for _, p := range bud.Parts {
		_, _ = fmt.Fprintf(tw, "    %s\t%7s\n", p.Name, micros(p.PerSample))
	}
	for _, p := range bud.Prometheus {
		_, _ = fmt.Fprintf(tw, "  %s\t%7s\n", p.Name, micros(p.PerSample))
	}
	_ = tw.Flush()
	b.printf("%s takes %s of tmaflow's %s per sample; the rest takes %s.\n", busShare(bud.BusKind), micros(bud.Bus), micros(bud.PerSample), micros(bud.PerSample-bud.Bus))
	for _, p := range bud.Prometheus {
		b.printf("%s spends %s on a whole sample: the CPU allows tmaflow a ratio of %.2f to it", p.Name, micros(p.PerSample), float64(p.PerSample)/float64(bud.PerSample))
		if p.StoredRatio > 0 {
			b.printf(" (stored: %.2f)", p.StoredRatio)
		}
		b.printf(".\n")
	}
}
