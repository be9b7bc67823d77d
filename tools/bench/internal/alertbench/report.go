package alertbench

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

// byService attributes tmaflow's CPU to its services, by priority, with
// the parts of bus kind that carry records (embedded broker or server,
// clients).
func byService(kind string) []benchkit.Part {
	server, clients := benchkit.BusParts(kind)
	return []benchkit.Part{
		{Name: "ruler (rule evaluation, its head, alert delivery)", Re: regexp.MustCompile(`services/ruler`)},
		{Name: "monitor (HTTP ingest)", Re: regexp.MustCompile(`services/monitor|net/http\.\(\*conn\)\.serve`)},
		{Name: "labeler", Re: regexp.MustCompile(`services/labeler`)},
		server,
		clients,
		{Name: "watermill router", Re: regexp.MustCompile(`ThreeDotsLabs/watermill`)},
		{Name: "PromQL / rules / TSDB outside the ruler's stacks", Re: regexp.MustCompile(`prometheus/prometheus/(promql|rules|tsdb)`)},
		benchkit.GoGCPart,
	}
}

// LoadRate is the background messages/s the system accepted during the
// trials.
func (r *Result) LoadRate() float64 {
	if r.Wall <= 0 {
		return 0
	}
	return float64(r.LoadSent) / r.Wall.Seconds()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func (r *Result) label() string {
	if r.Interval > 0 {
		return fmt.Sprintf("%s, evaluation_interval %s", r.Name, promDuration(r.Interval))
	}
	l := r.Name + ", rule on every resource"
	if r.Scoped {
		l = r.Name + ", rule on the trial series only"
	}
	if r.Split {
		l += ", ruler in its own process"
	}
	return l
}

// printReport prints a Markdown table and notes.
func printReport(out io.Writer, cfg Config, rep Report) {
	p := func(format string, args ...any) { _, _ = fmt.Fprintf(out, format, args...) }
	p("\n== summary: %d rules, %d trials each, background %g messages/s (%d series) ==\n\n", cfg.Rules, cfg.Trials, cfg.Rate, cfg.Resources*cfg.DataItems)
	p("| system | path | p50 | p90 | p99 | max | missed | CPU (cores) |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range rep.Results {
		p("| %s | POST → Alertmanager webhook | %s | %s | %s | %s | %d | %.3f |\n", r.label(), ms(r.Webhook.P50), ms(r.Webhook.P90), ms(r.Webhook.P99), ms(r.Webhook.Max), r.Webhook.Missing, r.CPUCores())
		for _, t := range r.Paths {
			p("| %s | %s | %s | %s | %s | %s | %d | |\n", r.label(), t.Name, ms(t.P50), ms(t.P90), ms(t.P99), ms(t.Max), t.Missing)
		}
	}
	p("\n")
	for _, r := range rep.Results {
		p("%s: crossing request round trip p50 %s / p99 %s; %.0f group evaluations/s", r.label(), ms(r.Send.P50), ms(r.Send.P99), r.Evaluations)
		if r.RuleEvaluations > 0 {
			p(", %.0f rule evaluations/s", r.RuleEvaluations)
		}
		if r.EvalSeconds > 0 {
			p(", %.3f s of evaluation per s", r.EvalSeconds)
		}
		if r.ArrivalToEval > 0 {
			p(", batch arrival→evaluation mean %s", ms(r.ArrivalToEval))
		}
		if r.TrialEvals > 0 {
			p(", the trial rule's group %.0f evaluations/s of %s each", r.TrialEvals, ms(r.TrialEvalMean))
		}
		p("; CPU %.2f s in %.1f s (%.3f cores), RSS %.0f MiB, %d background messages in the window\n",
			r.CPU.Seconds(), r.Wall.Seconds(), r.CPUCores(), float64(r.RSS)/(1<<20), r.LoadSent)
		if rate := r.LoadRate(); rate > 0 && rate < 0.95*cfg.Rate {
			p("  note: %s took %.0f of the %g background messages/s offered: it was saturated, and its latencies include the queueing\n", r.label(), rate, cfg.Rate)
		}
	}
	for _, r := range rep.Results {
		if r.Profile != nil {
			benchkit.PrintProfile(out, r.Profile)
			p("%s", ruleShare(r))
		}
	}
}

// ruleShare is the CPU of the ruler's stacks per second, from the
// profile's share of the process CPU.
func ruleShare(r *Result) string {
	for _, s := range r.Profile.Services {
		if strings.HasPrefix(s.Name, "ruler") && r.Profile.Total > 0 {
			share := s.CPU.Seconds() / r.Profile.Total.Seconds()
			return fmt.Sprintf("ruler share of tmaflow's CPU: %.1f%% ≈ %.3f cores of the %.3f\n", 100*share, share*r.CPUCores(), r.CPUCores())
		}
	}
	return ""
}
