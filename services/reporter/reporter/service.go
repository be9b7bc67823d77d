package reporter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Options are the service's dependencies.
type Options struct {
	// Publisher takes the report documents (topic-reports). Required.
	Publisher message.Publisher
	// Queriers give each tenant's query API. Nil: cfg.Query's API.
	Queriers QuerierFor
	// Alerts is the alert history of alerts panels reading topic-alerts.
	// Nil: such panels fail.
	Alerts AlertHistory
	// Registry gets the metrics. Nil: a private registry.
	Registry *prometheus.Registry
	// Prober is marked ready once missed runs were made up. Nil: a new one.
	Prober *service.Prober
	Logger *slog.Logger
	// Now is the clock of schedules. Nil: time.Now.
	Now func() time.Time
	// Sleep waits between retries of a failed run. Nil: service.Sleep.
	Sleep func(ctx context.Context, d time.Duration) bool
}

// tickInterval is how often schedules are checked.
const tickInterval = time.Second

// Service is the reporter, run as a run-group actor.
type Service struct {
	cfg      Config
	logger   *slog.Logger
	now      func() time.Time
	sleep    func(ctx context.Context, d time.Duration) bool
	prober   *service.Prober
	pub      message.Publisher
	queriers QuerierFor
	alerts   AlertHistory
	store    *Store
	metrics  *metrics
	http     *service.HTTPServer

	mu      sync.Mutex // reports, last
	reports []Report
	// last is the scheduled time of each report's last run (tenant/name).
	last map[string]time.Time
	// runMu makes runs one at a time: scheduled and asked for.
	runMu sync.Mutex

	stop     chan struct{}
	stopOnce sync.Once
}

// New validates cfg, loads the definitions (failing on an invalid one),
// opens the store and binds the listener.
func New(cfg Config, opts Options) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("reporter config: %w", err)
	}
	if opts.Publisher == nil {
		return nil, errors.New("reporter: no publisher")
	}
	service.Defaults(&opts.Registry, &opts.Prober, &opts.Logger, &opts.Now)
	if opts.Queriers == nil {
		creds, err := LoadCredentials(cfg.Query.CredentialsFile)
		if err != nil {
			return nil, err
		}
		opts.Queriers = NewQuerierFor(cfg.Query, creds, nil)
	}
	if opts.Sleep == nil {
		opts.Sleep = service.Sleep
	}
	s := &Service{
		cfg: cfg, logger: opts.Logger, now: opts.Now, sleep: opts.Sleep, prober: opts.Prober,
		pub: opts.Publisher, queriers: opts.Queriers, alerts: opts.Alerts, metrics: newMetrics(opts.Registry),
		last: map[string]time.Time{}, stop: make(chan struct{}),
	}
	s.prober.NotReady("starting: making up missed runs")
	var err error
	if s.store, err = OpenStore(cfg.DataDir); err != nil {
		return nil, err
	}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	mux := service.OpsMux(opts.Registry, s.prober)
	s.registerHTTP(mux)
	if s.http, err = service.Listen(cfg.ListenAddress, mux, nil, s.logger); err != nil {
		return nil, err
	}
	s.http.ShutdownTimeout = cfg.ShutdownTimeout
	return s, nil
}

// Addr is the bound address of the HTTP listener.
func (s *Service) Addr() string { return s.http.Addr() }

// Reload re-reads the definitions; on an error the previous ones stay.
func (s *Service) Reload() error {
	var keep func(string) bool
	if len(s.cfg.Tenants) > 0 {
		keep = func(t string) bool { return slices.Contains(s.cfg.Tenants, t) }
	}
	rs, err := LoadDir(s.cfg.ReportsDir, keep)
	if err != nil {
		s.metrics.reloadOK.Set(0)
		s.metrics.reloadFailure.Inc()
		return fmt.Errorf("load reports: %w", err)
	}
	s.mu.Lock()
	s.reports = rs
	s.mu.Unlock()
	s.metrics.reloadOK.Set(1)
	s.metrics.reports.Set(float64(len(rs)))
	return nil
}

// Execute makes up missed runs, turns ready, then runs reports on their
// schedules until Interrupt.
func (s *Service) Execute() error {
	s.prober.Healthy()
	var g run.Group
	g.Add(func() error {
		<-s.stop
		return nil
	}, func(error) { s.Interrupt(nil) })
	g.Add(s.http.Run, s.http.Interrupt)
	ctx, cancel := context.WithCancel(context.Background())
	g.Add(func() error {
		s.schedule(ctx)
		return nil
	}, func(error) { cancel() })
	return g.Run()
}

// Close releases the listener when Execute did not run (after Execute it
// is closed already).
func (s *Service) Close() error {
	if err := s.http.Listener.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close listener %s: %w", s.Addr(), err)
	}
	return nil
}

// Interrupt stops Execute; the process turns not ready at once.
func (s *Service) Interrupt(error) {
	s.stopOnce.Do(func() {
		s.prober.NotReady("stopping")
		close(s.stop)
	})
}

func (s *Service) schedule(ctx context.Context) {
	s.Tick(ctx)
	if ctx.Err() != nil {
		return
	}
	s.prober.Ready()
	lastReload := s.now()
	t := time.NewTicker(tickInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.cfg.CheckInterval > 0 && s.now().Sub(lastReload) >= s.cfg.CheckInterval {
			lastReload = s.now()
			if err := s.Reload(); err != nil {
				s.logger.Error("reload reports, keeping the previous ones", "err", err)
			}
		}
		s.Tick(ctx)
	}
}

func reportKey(tenant, name string) string { return tenant + "/" + name }

// Tick makes every run that is due: after downtime, the missed ones (the
// newest run.max-catch-up of each report), oldest first.
func (s *Service) Tick(ctx context.Context) {
	s.mu.Lock()
	reports := s.reports
	s.mu.Unlock()
	for _, r := range reports {
		for _, fire := range s.due(r) {
			if ctx.Err() != nil {
				return
			}
			if !s.runRetrying(ctx, r, fire) && ctx.Err() != nil {
				return // stopping: the run is made up at the next start
			}
			s.mu.Lock()
			s.last[reportKey(r.Tenant, r.Name)] = fire
			s.mu.Unlock()
		}
	}
}

// due lists the report's scheduled times since its last run up to now.
// A report never run starts from now: no backfill of its history.
func (s *Service) due(r Report) []time.Time {
	now := s.now()
	k := reportKey(r.Tenant, r.Name)
	s.mu.Lock()
	last, ok := s.last[k]
	s.mu.Unlock()
	if !ok {
		stored, found, err := s.store.LastRun(r.Tenant, r.Name)
		switch {
		case err != nil:
			s.logger.Error("read last run, starting from now", "tenant", r.Tenant, "report", r.Name, "err", err)
			last = now
		case found:
			last = stored
		default:
			last = now
			if err := s.store.SetLastRun(r.Tenant, r.Name, now); err != nil {
				s.logger.Error("record first schedule check", "tenant", r.Tenant, "report", r.Name, "err", err)
			}
		}
		s.mu.Lock()
		s.last[k] = last
		s.mu.Unlock()
	}
	var due []time.Time
	skipped := 0
	for t := r.Schedule.Next(last); !t.IsZero() && !t.After(now); t = r.Schedule.Next(t) {
		due = append(due, t)
		if len(due) > s.cfg.Run.MaxCatchUp {
			due = due[1:]
			skipped++
		}
	}
	if skipped > 0 {
		s.metrics.skipped.WithLabelValues(r.Tenant, r.Name).Add(float64(skipped))
		s.logger.Warn("missed runs skipped", "tenant", r.Tenant, "report", r.Name, "skipped", skipped, "made_up", len(due))
	}
	return due
}

// runRetrying runs r for fire, retrying a failure with backoff, and
// reports whether it succeeded.
func (s *Service) runRetrying(ctx context.Context, r Report, fire time.Time) bool {
	backoff := s.cfg.Run.MinBackoff
	for attempt := 1; ; attempt++ {
		_, err := s.Run(ctx, r, fire)
		if err == nil {
			// Persisted only now: a crash before makes the run up again.
			err = s.store.SetLastRun(r.Tenant, r.Name, fire)
		}
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if attempt >= s.cfg.Run.MaxAttempts {
			s.metrics.runs.WithLabelValues(r.Tenant, r.Name, statusFailed).Inc()
			s.logger.Error("report run given up", "tenant", r.Tenant, "report", r.Name, "scheduled", fire, "attempts", attempt, "err", err)
			return false
		}
		s.metrics.runs.WithLabelValues(r.Tenant, r.Name, statusRetry).Inc()
		s.logger.Warn("report run failed, retrying", "tenant", r.Tenant, "report", r.Name, "scheduled", fire, "attempt", attempt, "backoff", backoff, "err", err)
		if !s.sleep(ctx, backoff) {
			return false
		}
		backoff *= 2
	}
}

// Run generates r for the period of the run at fire, stores its files,
// then publishes its document: a run that fails publishes nothing, and
// one that published has its files on disk.
func (s *Service) Run(ctx context.Context, r Report, fire time.Time) (*Document, error) {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	began := time.Now()
	doc, err := s.generate(ctx, r, fire)
	s.metrics.duration.WithLabelValues(r.Tenant, r.Name).Observe(time.Since(began).Seconds())
	if err != nil {
		return nil, err
	}
	s.metrics.runs.WithLabelValues(r.Tenant, r.Name, statusSuccess).Inc()
	// When it succeeded, not fire: ?at= may name any period, even a future one.
	s.metrics.lastSuccess.WithLabelValues(r.Tenant, r.Name).Set(float64(s.now().UnixMilli()) / 1e3)
	s.logger.Info("report run", "tenant", r.Tenant, "report", r.Name, "scheduled", fire, "id", doc.ID,
		"period_start", doc.Period.Start, "period_end", doc.Period.End, "duration", time.Since(began))
	return doc, nil
}

func (s *Service) generate(ctx context.Context, r Report, fire time.Time) (*Document, error) {
	q, err := s.queriers(r.Tenant)
	if err != nil {
		return nil, err
	}
	qctx, cancel := context.WithTimeout(ctx, s.cfg.Query.Timeout)
	defer cancel()
	doc, err := Generate(qctx, q, s.alerts, r, fire, s.now())
	if err != nil {
		return nil, fmt.Errorf("report %s/%s: %w", r.Tenant, r.Name, err)
	}
	files, err := Render(doc, r.Location)
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode report %s/%s: %w", r.Tenant, r.Name, err)
	}
	if err := s.store.Save(doc, files, data); err != nil {
		return nil, err
	}
	msg := message.NewMessage("", data) // no UUID header: the contract's headers only
	msg.Metadata.Set(contract.HeaderTenant, r.Tenant)
	bus.SetKey(msg, []byte(r.Name))
	if err := s.pub.Publish(contract.TopicReports, msg); err != nil {
		return nil, fmt.Errorf("publish report %s/%s: %w", r.Tenant, r.Name, err)
	}
	return doc, nil
}

// report finds a loaded definition.
func (s *Service) report(tenant, name string) (Report, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.reports {
		if r.Tenant == tenant && r.Name == name {
			return r, true
		}
	}
	return Report{}, false
}
