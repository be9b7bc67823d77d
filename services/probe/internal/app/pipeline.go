package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/services/probe/internal/collect"
	"github.com/tmaflow/tmaflow/services/probe/internal/queue"
	"github.com/tmaflow/tmaflow/services/probe/internal/ship"
)

// pipeline is one configuration at work: the queue, the collectors
// sampling into it and the outputs' forwarders. A reload builds a new one
// over the same queue directory: the buffer survives.
type pipeline struct {
	cfg        FileConfig
	reg        *prometheus.Registry
	q          *queue.Queue
	samplers   []*sampler
	forwarders map[string]*ship.Forwarder
	closers    []io.Closer
	labels     []samples.Label // added to every series
	logger     *slog.Logger
	started    time.Time
}

// buildPipeline opens the queue in dir and builds cfg's collectors and
// outputs; nothing runs before run.
func buildPipeline(cfg FileConfig, dir string, logger *slog.Logger, now func() time.Time) (_ *pipeline, err error) {
	p := &pipeline{cfg: cfg, reg: prometheus.NewRegistry(), forwarders: map[string]*ship.Forwarder{}, logger: logger}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.close())
		}
	}()
	var outputs []string
	for _, o := range cfg.Outputs {
		outputs = append(outputs, o.Name)
	}
	p.q, err = queue.Open(queue.Options{
		Dir: dir, Outputs: outputs, SegmentBytes: cfg.Queue.SegmentBytes, MaxBytes: cfg.Queue.MaxMB << 20,
		MaxAge: cfg.Queue.MaxAge, Policy: cfg.Queue.Policy, SyncInterval: cfg.Queue.SyncInterval,
		Now: now, Logger: logger.With("component", "queue"), Registerer: p.reg,
	})
	if err != nil {
		return nil, err
	}
	labels := make([]samples.Label, 0, len(cfg.Labels))
	for k, v := range cfg.Labels {
		labels = append(labels, samples.Label{Name: k, Value: v})
	}
	collect.SortLabels(labels)
	p.labels = labels
	sm := newSamplerMetrics(p.reg)
	for _, cc := range cfg.Collectors {
		c, err := newCollector(cc)
		if err != nil {
			return nil, fmt.Errorf("collector %s: %w", cc.Name, err)
		}
		p.samplers = append(p.samplers, &sampler{
			name: cc.Name, c: c, interval: cc.Interval, labels: labels, q: p.q, m: sm, logger: logger, now: now,
		})
	}
	om := ship.NewMetrics(p.reg)
	for _, oc := range cfg.Outputs {
		out, err := p.newOutput(oc, om, now)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", oc.Name, err)
		}
		p.forwarders[oc.Name] = ship.NewForwarder(oc.Name, out, p.q, ship.ForwarderOptions{
			BatchSamples: oc.BatchSamples, LiveFirst: *oc.LiveFirst, BacklogRate: oc.BacklogRate, FlushInterval: oc.FlushInterval,
			Logger: logger, Metrics: om,
		})
	}
	return p, nil
}

func newCollector(cc CollectorConfig) (collect.Collector, error) {
	switch cc.Type {
	case CollectorHost:
		return collect.NewHost(collect.HostOptions{ProcPath: cc.ProcPath, SysPath: cc.SysPath, Parts: cc.Parts})
	case CollectorScrape:
		tlsCfg, err := cc.TLS.Build()
		if err != nil {
			return nil, err
		}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, MaxIdleConnsPerHost: 1}}
		return collect.Scrape{URL: cc.URL, Client: client, Timeout: cc.Timeout}, nil
	case CollectorExec:
		return collect.Command{Args: cc.Command, Timeout: cc.Timeout}, nil
	case CollectorFile:
		return collect.File{Path: cc.Path}, nil
	}
	return nil, fmt.Errorf("collector type %q", cc.Type)
}

func (p *pipeline) newOutput(oc OutputConfig, om *ship.Metrics, now func() time.Time) (ship.Output, error) {
	switch oc.Type {
	case OutputTMA:
		return ship.NewTMA(*oc.TMA, om.Unmapped.WithLabelValues(oc.Name), now)
	case OutputRemoteWrite:
		return ship.NewRemoteWrite(*oc.RemoteWrite)
	case OutputMQTT:
		m, err := ship.NewMQTT(*oc.MQTT)
		if err != nil {
			return nil, err
		}
		p.closers = append(p.closers, m)
		return m, nil
	}
	return nil, fmt.Errorf("output type %q", oc.Type)
}

// run samples and forwards until ctx ends; a forwarder that fails (the
// queue cannot persist an acknowledgement) ends it with its error.
func (p *pipeline) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.started = time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(p.forwarders)+1)
	stop := make(chan struct{})
	wg.Go(func() { errs <- p.q.Run(stop) })
	for _, s := range p.samplers {
		wg.Go(func() { s.run(ctx) })
	}
	for name, f := range p.forwarders {
		wg.Go(func() {
			if err := f.Run(ctx); err != nil {
				errs <- fmt.Errorf("output %s: %w", name, err)
				cancel()
			}
		})
	}
	<-ctx.Done()
	close(stop)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// shipped reports whether every output delivered a batch since the
// pipeline started.
func (p *pipeline) shipped() bool {
	for _, f := range p.forwarders {
		if !f.LastSuccess().After(p.started) {
			return false
		}
	}
	return true
}

// outputs are the output names, sorted.
func (p *pipeline) outputs() []string {
	var out []string
	for n := range p.forwarders {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (p *pipeline) close() error {
	var errs []error
	for _, c := range p.closers {
		errs = append(errs, c.Close())
	}
	if p.q != nil {
		errs = append(errs, p.q.Close())
	}
	return errors.Join(errs...)
}
