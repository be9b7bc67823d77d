package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/services/probe/internal/collect"
)

// Config sources.
const (
	sourceLocal  = "local"
	sourceRemote = "remote"
)

// active is the configuration in force and its running pipeline.
type active struct {
	cfg    FileConfig
	source string
	signed signed // the remote configuration's, for saving once proven
	p      *pipeline
	cancel context.CancelFunc
	done   chan error
}

// manage runs the pipeline of the configuration in force and changes it
// on reloads and remote configurations.
func (s *Service) manage(ctx context.Context) error {
	local, err := ReadFileConfig(s.cfg.ConfigFile)
	if err != nil {
		return err
	}
	cur := &active{cfg: local, source: sourceLocal}
	if local.Remote.Enabled() {
		// The last remote configuration that shipped, verified again.
		if sg, err := loadSigned(s.cfg.QueueDir); err == nil {
			if c, err := parseRemote(local, sg); err == nil {
				cur = &active{cfg: c, source: sourceRemote, signed: sg}
			} else {
				s.logger.Warn("saved remote configuration refused, using the local file", "err", err)
			}
		}
	}
	if err := s.start(ctx, cur, "applied", ""); err != nil {
		return err
	}
	defer func() { s.halt(cur) }()

	var (
		fetch    *fetcher
		ticker   *time.Ticker
		poll     <-chan time.Time
		pending  *active // applied, not yet proven to ship
		previous *active
		deadline <-chan time.Time
		refused  = map[string]bool{}
	)
	setRemote := func(c FileConfig) error {
		if ticker != nil {
			ticker.Stop()
		}
		fetch, ticker, poll = nil, nil, nil
		if !c.Remote.Enabled() {
			return nil
		}
		f, err := newFetcher(c.Remote)
		if err != nil {
			return err
		}
		interval := c.Remote.Interval
		if interval <= 0 {
			interval = time.Minute
		}
		fetch, ticker = f, time.NewTicker(interval)
		poll = ticker.C
		return nil
	}
	if err := setRemote(local); err != nil {
		return err
	}
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	// A first fetch right away.
	first := make(chan time.Time, 1)
	if fetch != nil {
		first <- time.Now()
	}

	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-cur.done:
			cur.done = nil
			if err == nil {
				err = errors.New("pipeline stopped")
			}
			return err
		case done := <-s.reload:
			c, err := ReadFileConfig(s.cfg.ConfigFile)
			if err == nil {
				err = setRemote(c)
			}
			if err == nil && cur.source == sourceLocal {
				err = s.replace(ctx, &cur, &active{cfg: c, source: sourceLocal}, "applied")
			}
			if err == nil {
				local = c
			}
			done <- err
		case <-first:
			s.poll(ctx, fetch, local, &cur, &pending, &previous, &deadline, refused)
		case <-poll:
			s.poll(ctx, fetch, local, &cur, &pending, &previous, &deadline, refused)
		case <-deadline:
			deadline = nil
			if cur.p.shipped() {
				s.logger.Info("remote configuration shipped, kept", "version", cur.cfg.Version)
				if err := saveSigned(s.cfg.QueueDir, cur.signed); err != nil {
					s.logger.Error("save remote configuration", "err", err)
				}
				pending, previous = nil, nil
				continue
			}
			bad := cur.cfg.Version
			refused[cur.signed.digest()] = true
			s.m.results.WithLabelValues("rolled_back").Inc()
			s.logger.Error("remote configuration could not ship in time, rolling back", "version", bad, "previous", previous.cfg.Version)
			prev := &active{cfg: previous.cfg, source: previous.source, signed: previous.signed}
			if err := s.replace(ctx, &cur, prev, "rolled_back:"+bad); err != nil {
				return err
			}
			pending, previous = nil, nil
		}
	}
}

// poll fetches the remote configuration and applies a new, verified,
// valid one, to be proven within RollbackAfter.
func (s *Service) poll(ctx context.Context, f *fetcher, local FileConfig, cur, pending, previous **active, deadline *<-chan time.Time, refused map[string]bool) {
	if f == nil || *pending != nil {
		return
	}
	sg, err := f.fetch(ctx)
	if errors.Is(err, errNoRemoteConfig) || errors.Is(err, errNotModified) {
		return
	}
	if err != nil {
		s.m.results.WithLabelValues("fetch_failed").Inc()
		s.logger.Warn("fetch remote configuration", "err", err)
		return
	}
	if refused[sg.digest()] || ((*cur).source == sourceRemote && (*cur).signed.digest() == sg.digest()) {
		return
	}
	c, err := parseRemote(local, sg)
	if err != nil {
		refused[sg.digest()] = true
		result := "invalid"
		if errors.Is(err, errBadSignature) {
			result = "bad_signature"
		}
		s.m.results.WithLabelValues(result).Inc()
		s.logger.Error("remote configuration refused", "result", result, "err", err)
		s.report(*cur, result, sg.digest())
		return
	}
	prev := *cur
	next := &active{cfg: c, source: sourceRemote, signed: sg}
	if err := s.replace(ctx, cur, next, "applied"); err != nil {
		refused[sg.digest()] = true
		s.m.results.WithLabelValues("invalid").Inc()
		s.logger.Error("remote configuration failed to start, previous restored", "version", c.Version, "err", err)
		return
	}
	*pending, *previous = next, &active{cfg: prev.cfg, source: prev.source, signed: prev.signed}
	after := local.Remote.RollbackAfter
	if after <= 0 {
		after = 2 * time.Minute
	}
	*deadline = time.After(after)
}

// replace stops the running pipeline and starts next's over the same
// queue; if next cannot start, the previous configuration is restarted.
func (s *Service) replace(ctx context.Context, cur **active, next *active, event string) error {
	old := *cur
	s.halt(old)
	if err := s.start(ctx, next, event, ""); err != nil {
		restart := &active{cfg: old.cfg, source: old.source, signed: old.signed}
		if rerr := s.start(ctx, restart, "restored", next.cfg.Version); rerr != nil {
			return errors.Join(err, rerr)
		}
		*cur = restart
		return err
	}
	*cur = next
	return nil
}

// start builds and runs a's pipeline.
func (s *Service) start(ctx context.Context, a *active, event, candidate string) error {
	p, err := buildPipeline(a.cfg, s.cfg.QueueDir, s.logger, s.opts.Now)
	if err != nil {
		return fmt.Errorf("start %s configuration %s: %w", a.source, a.cfg.Version, err)
	}
	pctx, cancel := context.WithCancel(ctx)
	a.p, a.cancel, a.done = p, cancel, make(chan error, 1)
	s.cur.Store(p)
	go func() { a.done <- p.run(pctx) }()
	s.m.info.Reset()
	s.m.info.WithLabelValues(a.cfg.Version, a.source).Set(1)
	s.m.applied.SetToCurrentTime()
	if event == "applied" {
		s.m.results.WithLabelValues("applied").Inc()
	}
	s.opts.Prober.Ready()
	s.logger.Info("configuration in force", "source", a.source, "version", a.cfg.Version, "event", event,
		"collectors", len(a.cfg.Collectors), "outputs", p.outputs())
	s.report(a, event, candidate)
	return nil
}

// report appends the configuration's state to the queue, so the central
// side learns it with the data: tmaflow_probe_config{version, source,
// event, candidate} 1.
func (s *Service) report(a *active, event, candidate string) {
	if a.p == nil {
		return
	}
	ls := []samples.Label{
		{Name: "__name__", Value: "tmaflow_probe_config"}, {Name: "candidate", Value: candidate},
		{Name: "event", Value: event}, {Name: "source", Value: a.source}, {Name: "version", Value: a.cfg.Version},
	}
	series := []samples.Series{{Labels: ls, Samples: []samples.Sample{{TimestampMs: s.opts.Now().UnixMilli(), Value: 1}}}}
	collect.WithLabels(series, a.p.labels)
	if err := a.p.q.Append(series); err != nil {
		s.logger.Warn("report configuration state", "err", err)
	}
}

// halt stops a's pipeline and closes it; the queue stays on disk.
func (s *Service) halt(a *active) {
	if a == nil || a.p == nil {
		return
	}
	a.cancel()
	if a.done != nil {
		if err := <-a.done; err != nil {
			s.logger.Error("pipeline ended", "err", err)
		}
		a.done = nil
	}
	if err := a.p.close(); err != nil {
		s.logger.Error("close pipeline", "err", err)
	}
	a.p = nil
}
