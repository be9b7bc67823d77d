package ruler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Options are the service's dependencies.
type Options struct {
	// Publisher takes alert changes (topic-alerts), recording-rule results
	// (topic-samples) and dead letters (topic-dlq). Required.
	Publisher message.Publisher
	// Source reads topic-metrics and topic-alerts (every partition, no
	// consumer group). Required.
	Source Source
	// Registry gets the metrics (the rules package's and the head's too).
	// Nil: a private registry.
	Registry *prometheus.Registry
	// Prober is marked ready once the window was replayed and alert state
	// restored. Nil: a new one.
	Prober *service.Prober
	Logger *slog.Logger
	// Now is the clock of evaluations and of the window. Nil: time.Now.
	Now func() time.Time
	// HTTPClient sends alerts to Alertmanager. Nil: a default client.
	HTTPClient *http.Client
}

// Service is the ruler, run as a run-group actor with Execute and
// Interrupt, reloaded with Reload.
type Service struct {
	cfg    Config
	logger *slog.Logger
	now    func() time.Time
	prober *service.Prober
	src    Source

	win         *window
	engine      *promql.Engine
	parser      parser.Parser
	ruleMetrics *rules.Metrics
	metrics     *metrics
	sink        *alertSink
	out         *outbox
	decoders    sync.Pool
	// evalSlots holds a token per group evaluation running.
	evalSlots chan struct{}

	rules    atomic.Pointer[ruleSet]
	reloadMu sync.Mutex // reload, going live, stopping
	running  bool       // runners started (under reloadMu)
	// The stamps the watcher saw at its previous check (under reloadMu):
	// a change is loaded once it has settled, not mid-write.
	pending   map[string]fileStamp
	stopping  bool // under reloadMu
	live      atomic.Bool
	reloadErr atomic.Pointer[reloadError]

	http *service.HTTPServer

	stop      chan struct{}
	stopOnce  sync.Once
	closeOnce sync.Once
	closeErr  error
}

type reloadError struct {
	at  time.Time
	err error
}

// New validates cfg, loads the rule files (failing on an invalid one),
// opens the window and binds the listener. Execute closes what New opened;
// call Close instead when Execute will not run.
func New(cfg Config, opts Options) (_ *Service, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ruler config: %w", err)
	}
	if opts.Publisher == nil {
		return nil, errors.New("ruler: no publisher")
	}
	service.Defaults(&opts.Registry, &opts.Prober, &opts.Logger, &opts.Now)
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{}
	}
	if opts.Source == nil {
		return nil, errors.New("ruler: no source")
	}
	s := &Service{
		cfg:    cfg,
		logger: opts.Logger,
		now:    opts.Now,
		prober: opts.Prober,
		src:    opts.Source,
		stop:   make(chan struct{}),

		evalSlots: make(chan struct{}, cfg.Evaluation.EvalSlots()),
	}
	s.decoders.New = func() any { return &samples.Decoder{} }
	s.prober.NotReady("starting: replaying the window")
	if s.win, err = newWindow(cfg.ScratchDir, cfg.Window.Milliseconds(), opts.Registry, s.logger.With("component", "head")); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.win.Close())
		}
	}()
	s.metrics = newMetrics(opts.Registry, s.win)
	s.ruleMetrics = rules.NewGroupMetrics(opts.Registry)
	s.parser = parser.NewParser(parser.Options{})
	s.engine = promql.NewEngine(promql.EngineOpts{
		Logger:                   s.logger.With("component", "promql"),
		Reg:                      opts.Registry,
		MaxSamples:               cfg.Evaluation.MaxSamples,
		Timeout:                  cfg.Evaluation.QueryTimeout,
		LookbackDelta:            cfg.Evaluation.LookbackDelta,
		NoStepSubqueryIntervalFn: func(int64) int64 { return cfg.Evaluation.DefaultInterval.Milliseconds() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		Parser:                   s.parser,
	})
	s.out = newOutbox(opts.Publisher, s.metrics, s.logger.With("component", "publisher"), cfg.Alerting.MinBackoff, cfg.Alerting.MaxBackoff)
	s.sink = &alertSink{s: s, externalURL: strings.TrimSuffix(cfg.Alerting.ExternalURL, "/"), firing: map[string]*Alert{}}
	for _, u := range cfg.Alerting.AlertmanagerURLs {
		s.sink.am = append(s.sink.am, newAMQueue(u, opts.HTTPClient, cfg.Alerting, s.metrics, s.logger))
	}
	s.rules.Store(newRuleSet(nil, nil))
	if err := s.reload(triggerStart, true); err != nil {
		return nil, err
	}
	mux := service.OpsMux(opts.Registry, s.prober)
	s.registerAPI(mux)
	if s.http, err = service.Listen(cfg.ListenAddress, mux, nil, s.logger); err != nil {
		return nil, err
	}
	s.http.ShutdownTimeout = cfg.ShutdownTimeout
	return s, nil
}

// Addr is the bound address of the HTTP listener.
func (s *Service) Addr() string { return s.http.Addr() }

// Handler serves the API and the ops endpoints, for callers that mount it
// elsewhere.
func (s *Service) Handler() http.Handler { return s.http.Server.Handler }

// CaughtUp reports whether the window was replayed and alert state
// restored, for embedding binaries that combine readiness.
func (s *Service) CaughtUp() bool { return s.live.Load() }

// Execute replays the window, restores alert state, then evaluates rules
// as data arrives until Interrupt. Then it stops evaluating, delivers what
// is queued (within the shutdown timeout) and closes the window.
func (s *Service) Execute() error {
	s.prober.Healthy()
	outCtx, outCancel := context.WithCancel(context.Background())
	drainCtx, drainCancel := context.WithCancel(context.Background())
	defer drainCancel()
	var bg sync.WaitGroup
	bg.Go(func() { s.out.run(outCtx, drainCtx) })
	for _, q := range s.sink.am {
		bg.Go(func() { q.run(outCtx, drainCtx) })
	}

	var g run.Group
	g.Add(func() error {
		<-s.stop
		return nil
	}, func(error) { s.Interrupt(nil) })
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error { return s.consume(ctx) }, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(context.Background())
		g.Add(func() error {
			s.maintain(ctx)
			return nil
		}, func(error) { cancel() })
	}
	g.Add(func() error {
		s.logger.Info("ruler listening", "addr", s.Addr(), "rules_dir", s.cfg.RulesDir, "groups", len(s.rules.Load().groups), "alertmanagers", len(s.sink.am))
		return s.http.Serve()
	}, func(error) { s.http.Interrupt(nil) })
	err := g.Run()

	s.prober.NotReady("shutting down")
	s.reloadMu.Lock()
	s.stopping = true
	s.haltRunners(s.rules.Load())
	s.reloadMu.Unlock()
	outCancel()
	t := time.AfterFunc(s.cfg.ShutdownTimeout, drainCancel)
	bg.Wait()
	t.Stop()
	return errors.Join(err, s.Close())
}

// consume replays topic-alerts (the alert state last published), then
// topic-metrics from now − window, goes live when caught up, and follows
// topic-metrics until ctx ends.
func (s *Service) consume(ctx context.Context) error {
	since := s.now().Add(-s.cfg.Window)
	actx, acancel := context.WithCancel(ctx)
	err := s.src.Consume(actx, contract.TopicAlerts, since, func(rec Record) {
		if err := s.sink.restore(rec.Value); err != nil {
			s.logger.Warn("ignoring a record of topic-alerts", "partition", rec.Partition, "offset", rec.Offset, "err", err)
		}
	}, acancel)
	acancel()
	if err != nil {
		return fmt.Errorf("replay %s: %w", contract.TopicAlerts, err)
	}
	if ctx.Err() != nil {
		return nil
	}
	var live sync.WaitGroup
	defer live.Wait()
	err = s.src.Consume(ctx, contract.TopicMetrics, since, s.handleMetrics, func() {
		live.Go(s.goLive)
	})
	if err != nil {
		return fmt.Errorf("consume %s: %w", contract.TopicMetrics, err)
	}
	return nil
}

// goLive restores alert state over the replayed window, then starts the
// group schedulers and marks the service ready.
func (s *Service) goLive() {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.stopping {
		return
	}
	rs := s.rules.Load()
	start := time.Now()
	s.restore(rs)
	s.startRunners(rs)
	s.live.Store(true)
	s.metrics.caughtUp.Set(1)
	s.prober.Ready()
	s.logger.Info("window replayed, alert state restored", "series", s.win.NumSeries(), "groups", len(rs.groups), "restore_duration", time.Since(start))
}

// startRunners starts the schedulers of rs, each with an evaluation at
// once (which also resends restored alerts). Under reloadMu.
func (s *Service) startRunners(rs *ruleSet) {
	for _, g := range rs.groups {
		go g.run()
		g.dataArrived(0, 0, noHops)
	}
	s.running = true
}

// haltRunners stops the schedulers of rs if they run. Under reloadMu.
func (s *Service) haltRunners(rs *ruleSet) {
	if !s.running {
		return
	}
	for _, g := range rs.groups {
		g.halt()
	}
	s.running = false
}

// maintain truncates the window and watches the rule files until ctx ends.
func (s *Service) maintain(ctx context.Context) {
	trunc := time.NewTicker(s.cfg.TruncateInterval)
	defer trunc.Stop()
	var check <-chan time.Time
	if s.cfg.RulesCheckInterval > 0 && s.cfg.RulesDir != "" {
		t := time.NewTicker(s.cfg.RulesCheckInterval)
		defer t.Stop()
		check = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-trunc.C:
			s.truncate()
		case <-check:
			if err := s.reload(triggerFile, false); err != nil {
				s.logger.Error("reload rules", "err", err)
			}
		}
	}
}

func (s *Service) truncate() {
	if err := s.win.truncate(s.now().Add(-s.cfg.Window).UnixMilli()); err != nil {
		s.metrics.truncateFailed.Inc()
		s.logger.Warn("truncate window", "err", err)
		return
	}
	s.metrics.truncations.Inc()
}

// Reload triggers.
const (
	triggerStart  = "start"
	triggerSignal = "signal"
	triggerFile   = "file"
)

// Reload re-reads the rule files (on SIGHUP). An invalid file is rejected
// with its file/line error and the rules in force keep running.
func (s *Service) Reload() error {
	return s.reload(triggerSignal, true)
}

// reload loads the rule files if they changed (or force) and swaps them
// in: groups that stay keep their alert state, and running schedulers
// are replaced.
func (s *Service) reload(trigger string, force bool) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	cur := s.rules.Load()
	files, stamps, err := listRuleFiles(s.cfg.RulesDir, s.keepTenant)
	if err == nil && !force {
		settled := maps.Equal(stamps, s.pending)
		s.pending = stamps
		if !settled || maps.Equal(stamps, cur.stamps) {
			return nil
		}
	}
	if err == nil {
		var next *ruleSet
		if next, err = s.buildRuleSet(files, stamps); err == nil {
			s.swapRules(cur, next)
			s.reloadErr.Store(nil)
			s.metrics.reloads.WithLabelValues(trigger, "success").Inc()
			s.metrics.groups.Set(float64(len(next.groups)))
			s.logger.Info("rules loaded", "trigger", trigger, "files", len(files), "groups", len(next.groups))
			return nil
		}
	}
	s.metrics.reloads.WithLabelValues(trigger, "failure").Inc()
	if last := s.reloadErr.Load(); !force && last != nil && last.err.Error() == err.Error() {
		return nil // reported already
	}
	s.reloadErr.Store(&reloadError{at: s.now(), err: err})
	// Remember the stamps so a broken file is reported once, not at every
	// check; a fix changes them again.
	if stamps != nil {
		kept := *cur
		kept.stamps = stamps
		s.rules.Store(&kept)
	}
	return fmt.Errorf("load rules from %s (the rules in force stay): %w", s.cfg.RulesDir, err)
}

func (s *Service) buildRuleSet(files map[string]string, stamps map[string]fileStamp) (*ruleSet, error) {
	parsed, err := parseRuleFiles(files, s.parser, s.logger)
	if err != nil {
		return nil, err
	}
	var groups []*groupRunner
	for _, f := range parsed {
		for _, rg := range f.groups {
			g, err := s.newGroupRunner(f.tenant, f.path, rg)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.path, err)
			}
			groups = append(groups, g)
		}
	}
	return newRuleSet(groups, stamps), nil
}

// swapRules replaces cur by next: groups of the same key take over the
// state of the old ones (active alerts, last results). Under reloadMu.
func (s *Service) swapRules(cur, next *ruleSet) {
	wasRunning := s.running
	s.haltRunners(cur)
	for _, g := range next.groups {
		if old := cur.byKey[g.key]; old != nil {
			g.group.CopyState(old.group)
			g.lastTs = old.lastTs
		}
	}
	s.rules.Store(next)
	if wasRunning {
		s.startRunners(next)
	}
}

// Interrupt makes Execute return after a graceful shutdown. Safe to call
// more than once and before Execute.
func (s *Service) Interrupt(error) {
	s.stopOnce.Do(func() { close(s.stop) })
}

// Close closes the window and the listener. Execute calls it on return;
// call it directly only when Execute never ran. Safe to call more than
// once.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if err := s.win.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close window: %w", err))
		}
		if err := s.http.Listener.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("close listener: %w", err))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
