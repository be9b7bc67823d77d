// Package alertbench is `make bench-alert`: the time from a probe's
// value crossing a threshold to the alert arriving at an Alertmanager
// webhook receiver, for tmaflow (POST /monitor → labeler → ruler, rules
// evaluated when their data arrives) and for Debian's Prometheus fed by
// remote write with evaluation_interval 1s and 100ms, with the same
// 1,000 rules, the same Alertmanager and the same background load.
//
// Every system runs as a child process (tmaflow built from services/tmaflow,
// on its embedded broker, or with -bus=nats its embedded NATS JetStream
// server, auth on), so its CPU is its own; the load, the
// trials, the webhook receiver and the topic-alerts reader run in this
// process and time every path on one monotonic clock.
//
// A trial arms a series of its own (a fresh resource_id, value below the
// threshold), waits a uniformly random time (the phase to evaluation
// ticks), sends the crossing value and times the firing alert at the
// webhook and, for tmaflow, on topic-alerts; then it sends a value below
// the threshold so the alert resolves. Each trial's alert is its own
// Alertmanager group (group_by resource_id, group_wait 0s), notified at
// once. Meanwhile the background load sends its rate of messages of
// values below every rule's threshold: to tmaflow as TMA messages, to
// Prometheus as the same series (learned from tmaflow's topic-metrics)
// by remote write.
package alertbench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/prometheus/prometheus/prompb"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/registry"
	"github.com/tmaflow/tmaflow/pkg/service"
	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

// Report is what the benchmark measured, one Result per system.
type Report struct {
	Results []*Result
}

// Result is one system's trials.
type Result struct {
	Name string
	// Bus is the bus tmaflow ran on ("" for Prometheus).
	Bus      string
	Interval time.Duration // Prometheus's evaluation_interval; 0 for tmaflow
	Scoped   bool          // tmaflow's trial rule selects only the trials' series
	Split    bool          // tmaflow's ruler ran in a process of its own
	Webhook  Latency
	// Paths are the other places the trial was timed at (tmaflow:
	// topic-alerts, and topic-metrics with -stages).
	Paths  []Path
	Send   Latency // the crossing request's round trip
	Trials int
	// Wall, CPU and RSS are the system process's over the trials, under
	// the background load.
	Wall time.Duration
	CPU  time.Duration
	RSS  int64
	// Evaluations is group evaluations/s (tmaflow: triggered and ticks;
	// Prometheus: group iterations), RuleEvaluations rules evaluated/s
	// (Prometheus only).
	Evaluations, RuleEvaluations float64
	// EvalSeconds is the summed duration of group evaluations per second.
	EvalSeconds float64
	// ArrivalToEval is tmaflow's mean time from a batch's arrival to its
	// evaluation.
	ArrivalToEval time.Duration
	// TrialEvals and TrialEvalMean are the trial rule's group's
	// evaluations/s and mean evaluation time (tmaflow only).
	TrialEvals    float64
	TrialEvalMean time.Duration
	LoadSent      int64 // background messages accepted
	Profile       *benchkit.ProfileSummary
}

// Path is the latency to one more place the crossing value or its alert
// shows.
type Path struct {
	Name string
	Latency
}

// tap is where a path's arrivals are recorded.
type tap struct {
	name string
	arr  *arrivals
}

// CPUCores is the CPU the system spent per second of the trials.
func (r *Result) CPUCores() float64 {
	if r.Wall <= 0 {
		return 0
	}
	return r.CPU.Seconds() / r.Wall.Seconds()
}

// Ruler and Prometheus metrics read around the trials.
const (
	metricGroupEvals   = "tmaflow_ruler_group_evaluations_total"
	metricGroupEvalDur = "tmaflow_ruler_group_evaluation_duration_seconds"
	metricArrivalEval  = "tmaflow_ruler_arrival_to_evaluation_seconds"
	metricPromIters    = "prometheus_rule_group_iterations_total"
	metricPromEvals    = "prometheus_rule_evaluations_total"
)

type bench struct {
	cfg    Config
	out    io.Writer
	dir    string
	bin    string
	rng    *rand.Rand
	client *http.Client
	hook   *arrivals
	amURL  string
	rules  string // the rule file of Prometheus (the trial rule on every resource)
	// rulesDirs hold the rule files of tmaflow in the ruler's layout,
	// <dir>/<tenant>/rules.yml, by the trial rule's scope.
	rulesDirs map[bool]string
	spec      ruleSpec
	learned   []map[string]string
}

// Run runs the benchmark, printing as it goes.
func Run(ctx context.Context, cfg Config, out io.Writer) (rep Report, err error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	b := &bench{cfg: cfg, out: out, rng: rand.New(rand.NewPCG(uint64(cfg.Seed), 0)),
		client: &http.Client{Timeout: 10 * time.Second}, hook: newArrivals()}
	if b.dir = cfg.OutDir; b.dir == "" {
		if b.dir, err = os.MkdirTemp("", "tmaflow-alertbench-"); err != nil {
			return Report{}, fmt.Errorf("temp dir: %w", err)
		}
		defer func() { err = errors.Join(err, os.RemoveAll(b.dir)) }()
	} else if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return Report{}, fmt.Errorf("out dir: %w", err)
	}
	if err := b.writeRules(); err != nil {
		return Report{}, err
	}
	if b.bin, err = cfg.Tmaflow(ctx, b.dir, out); err != nil {
		return Report{}, err
	}
	hook, err := startWebhook(webhookHandler(b.hook))
	if err != nil {
		return Report{}, err
	}
	defer func() { err = errors.Join(err, hook.Close()) }()
	am, err := b.startAlertmanager(ctx, hook.URL)
	if err != nil {
		return Report{}, err
	}
	defer func() { err = errors.Join(err, am.Stop(time.Minute)) }()
	b.printf("%d rules (%d groups), %d trials per system, background %g messages/s of %d data items over %d resources, Alertmanager %s (pid %d)\n\n",
		cfg.Rules, 1+(cfg.Rules-1+cfg.RulesPerGroup-1)/cfg.RulesPerGroup, cfg.Trials, cfg.Rate, cfg.DataItems, cfg.Resources, b.amURL, am.PID())

	base := int64(trialIDs)
	for _, kind := range cfg.Buses {
		for _, shape := range cfg.TmaflowRuns {
			r, err := b.tmaflowRun(ctx, shape, kind, base)
			if err != nil {
				return rep, fmt.Errorf("tmaflow on %s: %w", kind, err)
			}
			rep.Results = append(rep.Results, r)
			base += trialIDs
		}
	}
	if cfg.Prometheus != "" {
		for _, iv := range cfg.Intervals {
			r, err := b.prometheusRun(ctx, iv, base)
			base += trialIDs
			if err != nil {
				return rep, fmt.Errorf("prometheus at %s: %w", iv, err)
			}
			rep.Results = append(rep.Results, r)
		}
	}
	printReport(b.out, cfg, rep)
	return rep, nil
}

func (b *bench) printf(format string, args ...any) { _, _ = fmt.Fprintf(b.out, format, args...) }

// writeRules generates the rule file from the registry's descriptions,
// in the ruler's layout (<dir>/<tenant>/rules.yml); Prometheus reads the
// same file.
func (b *bench) writeRules() error {
	f, err := registry.Load(b.cfg.Registry)
	if err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	tenant := ""
	for _, p := range f.Probes {
		if p.Name == b.cfg.User || strconv.FormatInt(p.ID, 10) == b.cfg.User {
			tenant = p.Tenant
		}
	}
	if tenant == "" {
		return fmt.Errorf("registry %s: no probe %q", b.cfg.Registry, b.cfg.User)
	}
	trial, others, err := metricsOf(f, b.cfg.DataItems)
	if err != nil {
		return fmt.Errorf("registry %s: %w", b.cfg.Registry, err)
	}
	groups := (b.cfg.Rules - 1 + b.cfg.RulesPerGroup - 1) / b.cfg.RulesPerGroup
	b.spec = ruleSpec{Rules: b.cfg.Rules, PerGroup: b.cfg.RulesPerGroup, Threshold: b.cfg.Threshold,
		TrialMetric: trial, Metrics: others, Resources: b.background()[:groups]}
	b.rulesDirs = map[bool]string{}
	for _, scoped := range []bool{false, true} {
		dir := filepath.Join(b.dir, "rules-every-resource")
		if scoped {
			dir = filepath.Join(b.dir, "rules-trials-only")
		}
		if err := os.MkdirAll(filepath.Join(dir, tenant), 0o755); err != nil {
			return fmt.Errorf("rules dir: %w", err)
		}
		spec := b.spec
		spec.TrialScoped = scoped
		path := filepath.Join(dir, tenant, "rules.yml")
		if err := os.WriteFile(path, rulesFile(spec), 0o644); err != nil {
			return fmt.Errorf("write rules: %w", err)
		}
		b.rulesDirs[scoped] = dir
		if !scoped {
			b.rules = path
		}
	}
	return nil
}

// background is the background load's resource ids.
func (b *bench) background() []int64 {
	ids := make([]int64, b.cfg.Resources)
	for i := range ids {
		ids[i] = b.cfg.FirstResource + int64(i)
	}
	return ids
}

func (b *bench) startAlertmanager(ctx context.Context, hookURL string) (*benchkit.Process, error) {
	ports, err := benchkit.FreePorts(1)
	if err != nil {
		return nil, err
	}
	b.amURL = "http://" + ports[0]
	cfgPath := filepath.Join(b.dir, "alertmanager.yml")
	if err := os.WriteFile(cfgPath, alertmanagerConfig(hookURL), 0o644); err != nil {
		return nil, fmt.Errorf("alertmanager config: %w", err)
	}
	p, err := benchkit.StartProcess("alertmanager", b.cfg.Alertmanager, []string{
		"--config.file=" + cfgPath,
		"--storage.path=" + filepath.Join(b.dir, "alertmanager-data"),
		"--web.listen-address=" + ports[0],
		"--cluster.listen-address=",
		"--log.level=warn",
	}, filepath.Join(b.dir, "alertmanager.log"))
	if err != nil {
		return nil, err
	}
	if err := benchkit.WaitReady(ctx, p, b.amURL+"/-/ready", time.Minute); err != nil {
		return nil, errors.Join(err, p.Stop(10*time.Second))
	}
	return p, nil
}

// tmaflowRun measures tmaflow: monitor, labeler and ruler on the
// embedded broker or server of bus kind, alerts to the Alertmanager and
// topic-alerts.
func (b *bench) tmaflowRun(ctx context.Context, shape TmaflowShape, kind string, base int64) (_ *Result, err error) {
	scoped := shape.Scoped
	run := &Result{Name: "tmaflow", Bus: kind, Scoped: scoped, Split: shape.Split}
	if kind != benchkit.BusKafka {
		run.Name = "tmaflow on " + strings.ToUpper(kind)
	}
	ports, err := benchkit.FreePorts(5)
	if err != nil {
		return nil, err
	}
	monitor, labeler, rulerAddr, debug := ports[1], ports[2], ports[3], ports[4]
	bus := benchkit.Bus{Kind: kind, Addr: ports[0]}
	reg, err := filepath.Abs(b.cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("registry path: %w", err)
	}
	// Each run has its own data dir: a broker holding an earlier run's
	// records would make the ruler replay its trials.
	dataDir := filepath.Join(b.dir, fmt.Sprintf("tmaflow-%s-scoped-%t-split-%t-data", kind, scoped, shape.Split))
	ingestArgs := append([]string{
		"-data-dir=" + dataDir,
		"-registry=" + reg,
	}, bus.Args()...)
	ingestArgs = append(ingestArgs,
		"-monitor.listen-address="+monitor,
		"-labeler.listen-address="+labeler,
		"-log.level=warn",
	)
	rulerArgs := []string{
		"-ruler.listen-address=" + rulerAddr,
		"-ruler.rules.dir=" + b.rulesDirs[scoped],
		"-ruler.alertmanager.url=" + b.amURL,
		"-debug.listen-address=" + debug, // profiled: the ruler's process
	}
	var procs []*benchkit.Process
	defer func() {
		for _, p := range slices.Backward(procs) {
			err = errors.Join(err, p.Stop(time.Minute))
		}
	}()
	start := func(name, log string, args ...[]string) (*benchkit.Process, error) {
		p, err := benchkit.StartProcess(name, b.bin, append(slices.Concat(args...), b.cfg.TmaflowArgs...), filepath.Join(b.dir, log))
		if err == nil {
			procs = append(procs, p)
		}
		return p, err
	}
	var tf *benchkit.Process
	if shape.Split {
		tf, err = start("tmaflow", "tmaflow-"+kind+".log", []string{"-target=monitor,labeler"}, ingestArgs)
	} else {
		tf, err = start("tmaflow", "tmaflow-"+kind+".log", []string{"-target=monitor,labeler,ruler"}, ingestArgs, rulerArgs)
	}
	if err != nil {
		return nil, err
	}
	for _, addr := range []string{monitor, labeler} {
		if err := benchkit.WaitReady(ctx, tf, "http://"+addr+"/-/ready", time.Minute); err != nil {
			return nil, err
		}
	}
	rp := tf
	if shape.Split {
		if rp, err = start("tmaflow ruler", "tmaflow-"+kind+"-ruler.log", []string{"-target=ruler"}, bus.ClientArgs(), []string{
			"-data-dir=" + dataDir + "-ruler", "-log.level=warn"}, rulerArgs); err != nil {
			return nil, err
		}
	}
	if err := benchkit.WaitReady(ctx, rp, "http://"+rulerAddr+"/-/ready", time.Minute); err != nil {
		return nil, err
	}
	if err := b.awaitRules(ctx, rp, "http://"+rulerAddr+"/api/v1/rules"); err != nil {
		return nil, err
	}
	b.printf("%s: pid %d (ruler %d), monitor %s, ruler %s, bus %s; %d rules loaded\n", run.label(), tf.PID(), rp.PID(), monitor, rulerAddr, bus.URL(), b.cfg.Rules)

	monitorURL := "http://" + monitor + "/monitor"
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	st := &benchkit.SendStats{}
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		benchkit.Send(loadCtx, benchkit.SendConfig{
			URL: monitorURL, User: b.cfg.User, Password: b.cfg.Password, ProbeID: b.cfg.ProbeID,
			Resources: b.background(), DataItems: b.cfg.DataItems, Concurrency: b.cfg.Concurrency,
			Rate: b.cfg.Rate, Value: backgroundValue,
		}, st)
	}()
	defer func() { stopLoad(); <-loadDone }()

	learner := newSeriesLearner()
	stopLearn, err := consumeBus(ctx, bus, contract.TopicMetrics, true, learner.handle)
	if err != nil {
		return nil, err
	}
	topic := newArrivals()
	stopAlerts, err := consumeBus(ctx, bus, contract.TopicAlerts, false, alertsFromTopic(topic))
	if err != nil {
		return nil, errors.Join(err, stopLearn())
	}
	defer func() { err = errors.Join(err, stopAlerts()) }()
	taps := []tap{{"POST → topic-alerts", topic}}
	if b.cfg.Stages {
		crossed := newArrivals()
		stopCrossed, err := consumeBus(ctx, bus, contract.TopicMetrics, false, crossings(crossed, b.spec.TrialMetric, b.cfg.Threshold))
		if err != nil {
			return nil, errors.Join(err, stopLearn())
		}
		defer func() { err = errors.Join(err, stopCrossed()) }()
		taps = append([]tap{{"POST → topic-metrics (labeler output)", crossed}}, taps...)
	}
	b.printf("tmaflow: warm-up %s\n", b.cfg.Warmup)
	if !service.Sleep(ctx, b.cfg.Warmup) {
		return nil, errors.Join(ctx.Err(), stopLearn())
	}
	err = b.learn(ctx, learner)
	if err = errors.Join(err, stopLearn()); err != nil {
		return nil, err
	}
	if err := st.Err(); err != nil {
		return nil, fmt.Errorf("background load: %w", err)
	}

	client := &http.Client{Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	clock := benchkit.NewResourceClock(1)
	sendCfg := benchkit.SendConfig{URL: monitorURL, User: b.cfg.User, Password: b.cfg.Password}
	var seq int64
	send := func(ctx context.Context, resource int64, value float64) error {
		seq++
		body := benchkit.AppendMessage(nil, b.cfg.ProbeID, resource, seq, clock.Next(0, time.Now()), 1,
			func(int64, int) float64 { return value })
		status, err := benchkit.Post(ctx, client, sendCfg, body)
		if err == nil && status != http.StatusOK {
			err = fmt.Errorf("monitor answered %d", status)
		}
		return err
	}
	var prof chan error
	profPath := filepath.Join(b.dir, fmt.Sprintf("tmaflow-%s-scoped-%t-split-%t-cpu.pprof", kind, scoped, shape.Split))
	if b.cfg.Profile > 0 {
		prof = make(chan error, 1)
		go func() { prof <- benchkit.FetchProfile(ctx, debug, b.cfg.Profile, profPath) }()
	}
	sent0 := st.OK.Load()
	err = b.measure(ctx, run, procs, "http://"+rulerAddr+"/metrics", base, send, taps...)
	run.LoadSent = st.OK.Load() - sent0
	if err != nil {
		return nil, err
	}
	if prof != nil {
		if perr := <-prof; perr != nil {
			b.printf("tmaflow profile: %v\n", perr)
		} else if s, perr := benchkit.Summarise(ctx, b.cfg.GoBinary, b.bin, profPath, b.cfg.Profile, byService(kind), benchkit.ByWork); perr != nil {
			b.printf("tmaflow profile: %v\n", perr)
		} else {
			s.Run = run.label()
			run.Profile = &s
		}
	}
	if err := st.Err(); err != nil {
		return nil, fmt.Errorf("background load: %w", err)
	}
	return run, nil
}

// learn waits until topic-metrics showed every series of the background
// (the labeler's label sets) and checks the rules' metrics are among
// them: a rule on a series that does not exist would cost nothing.
func (b *bench) learn(ctx context.Context, l *seriesLearner) error {
	want := b.cfg.Resources * b.cfg.DataItems
	deadline := time.Now().Add(time.Minute)
	for {
		b.learned = b.learned[:0]
		for _, s := range l.sets() {
			if id, err := strconv.ParseInt(s["resource_id"], 10, 64); err == nil && id >= b.cfg.FirstResource && id < b.cfg.FirstResource+int64(b.cfg.Resources) {
				b.learned = append(b.learned, s)
			}
		}
		if len(b.learned) >= want {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topic-metrics showed %d of the background's %d series after the warm-up and a minute", len(b.learned), want)
		}
		if !service.Sleep(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
	names := map[string]bool{}
	for _, s := range b.learned {
		names[s["__name__"]] = true
	}
	for _, m := range append([]string{b.spec.TrialMetric}, b.spec.Metrics...) {
		if !names[m] {
			return fmt.Errorf("no series named %s on topic-metrics: the rules would select nothing", m)
		}
	}
	return nil
}

// awaitRules waits until the rules API lists every rule.
func (b *bench) awaitRules(ctx context.Context, p *benchkit.Process, url string) error {
	deadline := time.Now().Add(time.Minute)
	for {
		n, err := countRules(ctx, b.client, url)
		if err == nil && n == b.cfg.Rules {
			return nil
		}
		if perr := p.Exited(); perr != nil {
			return perr
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s lists %d rules, want %d (last error: %v)", url, n, b.cfg.Rules, err)
		}
		if !service.Sleep(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// countRules counts the rules of a Prometheus-style /api/v1/rules.
func countRules(ctx context.Context, client *http.Client, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("rules: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("rules: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	return parseRuleCount(resp.Body)
}

func parseRuleCount(r io.Reader) (int, error) {
	var body struct {
		Status string `json:"status"`
		Data   struct {
			Groups []struct {
				Rules []json.RawMessage `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(r).Decode(&body); err != nil {
		return 0, fmt.Errorf("decode rules: %w", err)
	}
	if body.Status != "success" {
		return 0, fmt.Errorf("rules: status %q", body.Status)
	}
	n := 0
	for _, g := range body.Data.Groups {
		n += len(g.Rules)
	}
	return n, nil
}

// sendFunc sends one value of a trial's series.
type sendFunc func(ctx context.Context, resource int64, value float64) error

// measure runs the trials (resource ids from base) and reads the
// process's CPU and the evaluation metrics around them.
func (b *bench) measure(ctx context.Context, run *Result, procs []*benchkit.Process, metricsURL string, base int64, send sendFunc, taps ...tap) error {
	names := []string{metricGroupEvals, metricGroupEvalDur, metricArrivalEval, metricPromIters, metricPromEvals}
	m0, err := benchkit.Scrape(ctx, b.client, metricsURL, names...)
	if err != nil {
		return err
	}
	g0, err := benchkit.ScrapeMatching(ctx, b.client, metricsURL, trialGroup, metricGroupEvalDur)
	if err != nil {
		return err
	}
	u0, err := usage(procs)
	if err != nil {
		return err
	}
	start := time.Now()
	var hook, sent []time.Duration
	hookMiss := 0
	// One line per trial, for finding what the slow ones have in common
	// (their time in the run against the system's log).
	timeline := []string{"start_unix_ms,send_ms,webhook_ms"}
	paths := make([][]time.Duration, len(taps))
	pathMiss := make([]int, len(taps))
	arm, cross, resolve := float64(backgroundMax)/2, b.cfg.Threshold+5, float64(backgroundMax)/4
	for i := range b.cfg.Trials {
		id := base + int64(i)
		key := strconv.FormatInt(id, 10)
		if err := send(ctx, id, arm); err != nil {
			return fmt.Errorf("trial %d: arm: %w", i, err)
		}
		wait := 50*time.Millisecond + time.Duration(b.rng.Int64N(int64(b.cfg.Phase)+1))
		if !service.Sleep(ctx, wait) {
			return ctx.Err()
		}
		t0 := time.Now()
		if err := send(ctx, id, cross); err != nil {
			return fmt.Errorf("trial %d: cross: %w", i, err)
		}
		sent = append(sent, time.Since(t0))
		hookMs := "missed"
		if at, ok := b.hook.await(ctx, key, b.cfg.TrialTimeout); ok {
			hook = append(hook, at.Sub(t0))
			hookMs = csvMs(at.Sub(t0))
		} else {
			hookMiss++
		}
		timeline = append(timeline, strconv.FormatInt(t0.UnixMilli(), 10)+","+csvMs(sent[len(sent)-1])+","+hookMs)
		for k, tp := range taps {
			if at, ok := tp.arr.await(ctx, key, b.cfg.TrialTimeout); ok {
				paths[k] = append(paths[k], at.Sub(t0))
			} else {
				pathMiss[k]++
			}
		}
		if err := send(ctx, id, resolve); err != nil {
			return fmt.Errorf("trial %d: resolve: %w", i, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if (i+1)%max(b.cfg.Trials/4, 1) == 0 {
			b.printf("%s: %d/%d trials, webhook p50 so far %s\n", run.Name, i+1, b.cfg.Trials, summarize(hook, hookMiss).P50.Round(10*time.Microsecond))
		}
	}
	run.Wall = time.Since(start)
	name := strings.NewReplacer(" ", "-", ",", "", "/", "-").Replace(strings.ToLower(run.label()))
	if err := os.WriteFile(filepath.Join(b.dir, name+"-trials.csv"), []byte(strings.Join(timeline, "\n")+"\n"), 0o644); err != nil {
		return fmt.Errorf("write trials: %w", err)
	}
	u1, err := usage(procs)
	if err != nil {
		return err
	}
	m1, err := benchkit.Scrape(ctx, b.client, metricsURL, names...)
	if err != nil {
		return err
	}
	g1, err := benchkit.ScrapeMatching(ctx, b.client, metricsURL, trialGroup, metricGroupEvalDur)
	if err != nil {
		return err
	}
	run.Trials = b.cfg.Trials
	run.Webhook, run.Send = summarize(hook, hookMiss), summarize(sent, 0)
	for k, tp := range taps {
		run.Paths = append(run.Paths, Path{Name: tp.name, Latency: summarize(paths[k], pathMiss[k])})
	}
	run.CPU, run.RSS = u1.CPU-u0.CPU, u1.RSS
	secs := run.Wall.Seconds()
	delta := func(n string) float64 { return (m1[n] - m0[n]) / secs }
	// The ruler exposes the rules package's metrics too: its own
	// counter, where present, is the one that counts its evaluations.
	run.Evaluations = delta(metricGroupEvals)
	if _, ok := m1[metricGroupEvals]; !ok {
		run.Evaluations = delta(metricPromIters)
	}
	run.RuleEvaluations = delta(metricPromEvals)
	run.EvalSeconds = delta(metricGroupEvalDur + "_sum")
	if n := m1[metricArrivalEval+"_count"] - m0[metricArrivalEval+"_count"]; n > 0 {
		run.ArrivalToEval = time.Duration((m1[metricArrivalEval+"_sum"] - m0[metricArrivalEval+"_sum"]) / n * float64(time.Second))
	}
	if n := g1[metricGroupEvalDur+"_count"] - g0[metricGroupEvalDur+"_count"]; n > 0 {
		run.TrialEvals = n / secs
		run.TrialEvalMean = time.Duration((g1[metricGroupEvalDur+"_sum"] - g0[metricGroupEvalDur+"_sum"]) / n * float64(time.Second))
	}
	return nil
}

// trialGroup accepts the ruler's series of the trial rule's group
// (group="<file>;trial").
func trialGroup(m *dto.Metric) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == "group" && strings.HasSuffix(l.GetValue(), ";"+trialGroupName) {
			return true
		}
	}
	return false
}

// prometheusRun measures Prometheus with the rules at interval, fed by
// remote write.
func (b *bench) prometheusRun(ctx context.Context, interval time.Duration, base int64) (_ *Result, err error) {
	ports, err := benchkit.FreePorts(1)
	if err != nil {
		return nil, err
	}
	addr := ports[0]
	name := "prometheus-" + promDuration(interval)
	cfgPath := filepath.Join(b.dir, name+".yml")
	if err := os.WriteFile(cfgPath, prometheusConfig(interval, b.rules, b.amURL[len("http://"):]), 0o644); err != nil {
		return nil, fmt.Errorf("prometheus config: %w", err)
	}
	p, err := benchkit.StartProcess(name, b.cfg.Prometheus, []string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + filepath.Join(b.dir, name+"-data"),
		"--web.listen-address=" + addr,
		"--web.enable-remote-write-receiver",
		"--log.level=warn",
	}, filepath.Join(b.dir, name+".log"))
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, p.Stop(time.Minute)) }()
	if err := benchkit.WaitReady(ctx, p, "http://"+addr+"/-/ready", time.Minute); err != nil {
		return nil, err
	}
	if err := b.awaitRules(ctx, p, "http://"+addr+"/api/v1/rules"); err != nil {
		return nil, err
	}
	groups, trialLabels, err := b.remoteSeries()
	if err != nil {
		return nil, err
	}
	writeURL := "http://" + addr + "/api/v1/write"
	b.printf("\nPrometheus pid %d at %s, evaluation_interval %s: %d series remote-written, warm-up %s\n",
		p.PID(), addr, promDuration(interval), b.cfg.Resources*b.cfg.DataItems, b.cfg.Warmup)
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	st := &benchkit.SendStats{}
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		benchkit.RemoteWrite(loadCtx, benchkit.WriteConfig{
			URL: writeURL, Groups: groups, Writers: b.cfg.Writers,
			PerRequest: max(2000/b.cfg.DataItems, 1), Rate: b.cfg.Rate, Value: backgroundValue,
		}, st)
	}()
	defer func() { stopLoad(); <-loadDone }()
	if !service.Sleep(ctx, b.cfg.Warmup) {
		return nil, ctx.Err()
	}
	if err := st.Err(); err != nil {
		return nil, fmt.Errorf("background remote write: %w", err)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	clock := benchkit.NewResourceClock(1)
	var enc benchkit.WriteEncoder
	send := func(ctx context.Context, resource int64, value float64) error {
		ls := slices.Clone(trialLabels)
		for i := range ls {
			if ls[i].Name == "resource_id" {
				ls[i].Value = strconv.FormatInt(resource, 10)
			}
		}
		req := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:  ls,
			Samples: []prompb.Sample{{Timestamp: clock.Next(0, time.Now()), Value: value}},
		}}}
		body, err := enc.Encode(&req)
		if err != nil {
			return err
		}
		status, err := benchkit.PostWrite(ctx, client, writeURL, body)
		if err == nil && status/100 != 2 {
			err = fmt.Errorf("remote write answered %d", status)
		}
		return err
	}
	run := &Result{Name: "Prometheus 2.42", Interval: interval}
	sent0 := st.OK.Load()
	if err := b.measure(ctx, run, []*benchkit.Process{p}, "http://"+addr+"/metrics", base, send); err != nil {
		return nil, err
	}
	run.LoadSent = (st.OK.Load() - sent0) * int64(max(2000/b.cfg.DataItems, 1))
	if err := st.Err(); err != nil {
		return nil, fmt.Errorf("background remote write: %w", err)
	}
	return run, nil
}

// remoteSeries is the background's series as tmaflow labelled them,
// grouped by resource, and the label set of a trial's series (the trial
// metric's, with resource_id to be replaced).
func (b *bench) remoteSeries() ([]benchkit.Group, []prompb.Label, error) {
	groups := benchkit.GroupSeries(b.learned)
	if len(groups) != b.cfg.Resources {
		return nil, nil, fmt.Errorf("learned series of %d resources, want %d", len(groups), b.cfg.Resources)
	}
	for _, g := range groups {
		for _, ls := range g {
			for _, l := range ls {
				if l.Name == "__name__" && l.Value == b.spec.TrialMetric {
					return groups, slices.Clone(ls), nil
				}
			}
		}
	}
	return nil, nil, fmt.Errorf("no %s series learned", b.spec.TrialMetric)
}

// csvMs is d in milliseconds with three decimals.
func csvMs(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

// usage is the summed CPU and RSS of the system's processes.
func usage(procs []*benchkit.Process) (benchkit.Usage, error) {
	var sum benchkit.Usage
	for _, p := range procs {
		u, err := p.Usage()
		if err != nil {
			return benchkit.Usage{}, err
		}
		sum.CPU += u.CPU
		sum.RSS += u.RSS
	}
	return sum, nil
}
