package ruler

import (
	"context"
	"hash/fnv"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/rules"
)

// maxRuleHops bounds how far recording-rule results trigger other groups;
// noHops marks an evaluation no data triggered (a tick).
const (
	maxRuleHops = 4
	noHops      = maxRuleHops
)

// groupRunner is the scheduler of one rule group: it evaluates the group
// when data it selects arrives (at once, then at most once per debounce
// period while a burst lasts) and on its interval tick (for `for`,
// absent() and resolution), one evaluation at a time.
type groupRunner struct {
	s        *Service
	tenant   string
	key      string
	name     string
	file     string
	group    *rules.Group
	interval time.Duration

	trigger chan struct{}
	// arrival is the earliest received-at (unix ns) of the batches
	// waiting for an evaluation, 0 if none; ahead the newest sample time
	// (unix ms) among them.
	arrival atomic.Int64
	ahead   atomic.Int64
	// hops is the fewest rule-to-rule steps behind the pending triggers:
	// 0 for data from topic-metrics, n+1 for results of a group evaluated
	// at n hops. Results propagate at most maxRuleHops, so groups that
	// select each other's results cannot trigger each other forever.
	hops atomic.Int32
	// evalHops is hops of the evaluation running (under mu).
	evalHops int32
	// quiet suppresses notifications and publishing (restore).
	quiet atomic.Bool

	mu     sync.Mutex // one evaluation at a time
	lastTs time.Time

	evalData, evalTick, evalRestore interface{ Inc() }
	duration                        interface{ Observe(float64) }

	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
}

// newGroupRunner builds the group rg of a tenant's rule file.
func (s *Service) newGroupRunner(tenant, file string, rg rulefmt.RuleGroup) (*groupRunner, error) {
	rs, err := buildRules(tenant, rg, s.parser, s.cfg.Alerting.ExternalURL, s.logger)
	if err != nil {
		return nil, err
	}
	interval := time.Duration(rg.Interval)
	if interval <= 0 {
		interval = s.cfg.Evaluation.DefaultInterval
	}
	g := &groupRunner{
		s:        s,
		tenant:   tenant,
		key:      groupKey(tenant, file, rg.Name),
		name:     rg.Name,
		file:     file,
		interval: interval,
		trigger:  make(chan struct{}, 1),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	g.hops.Store(noHops)
	label := rules.GroupKey(file, rg.Name)
	g.evalData = s.metrics.evaluations.WithLabelValues(tenant, label, triggerData)
	g.evalTick = s.metrics.evaluations.WithLabelValues(tenant, label, triggerTick)
	g.evalRestore = s.metrics.evaluations.WithLabelValues(tenant, label, triggerRestore)
	g.duration = s.metrics.evalDuration.WithLabelValues(tenant, label)

	latest := s.win.ruleQueryable(s.cfg.Evaluation.LookbackDelta)
	q := newTenantQueryable(latest, tenant)
	var ext *url.URL
	if s.cfg.Alerting.ExternalURL != "" {
		ext, _ = url.Parse(s.cfg.Alerting.ExternalURL) // validated
	}
	opts := &rules.ManagerOptions{
		NameValidationScheme: model.UTF8Validation,
		ExternalURL:          ext,
		QueryFunc:            thresholdQueryFunc(latest, q.tenant, s.parser, rules.EngineQueryFunc(s.engine, q)),
		NotifyFunc:           g.notify,
		Context:              context.Background(),
		Appendable:           ruleAppendable{s: s, g: g},
		Queryable:            q,
		Logger:               s.logger.With("tenant", tenant),
		ResendDelay:          s.cfg.Alerting.ResendDelay,
		Metrics:              s.ruleMetrics,
		Parser:               s.parser,
	}
	g.group = rules.NewGroup(rules.GroupOptions{
		Name:        rg.Name,
		File:        file,
		Interval:    interval,
		Limit:       rg.Limit,
		Rules:       rs,
		Opts:        opts,
		QueryOffset: (*time.Duration)(rg.QueryOffset),
	})
	return g, nil
}

// notify takes the alerts an evaluation wants sent.
func (g *groupRunner) notify(_ context.Context, expr string, alerts ...*rules.Alert) {
	if g.quiet.Load() || len(alerts) == 0 {
		return
	}
	g.s.sink.notify(g.tenant, expr, alerts)
}

// dataArrived asks for an evaluation for a batch received at receivedAt
// (unix ns, 0 if unknown) whose newest sample is at newestMs.
func (g *groupRunner) dataArrived(receivedAt, newestMs int64, hops int32) {
	for {
		old := g.hops.Load()
		if old <= hops || g.hops.CompareAndSwap(old, hops) {
			break
		}
	}
	if receivedAt > 0 {
		for {
			old := g.arrival.Load()
			if (old != 0 && old <= receivedAt) || g.arrival.CompareAndSwap(old, receivedAt) {
				break
			}
		}
	}
	for {
		old := g.ahead.Load()
		if old >= newestMs || g.ahead.CompareAndSwap(old, newestMs) {
			break
		}
	}
	select {
	case g.trigger <- struct{}{}:
	default: // an evaluation is pending already and will see this batch
	}
}

// run schedules the group until halt. The interval tick comes an
// interval after the group's last evaluation, whatever triggered it: a
// group whose data arrives at least once an interval is evaluated only
// by its data, and `for`, absent() and resolution still see an
// evaluation at least every interval. The first tick is spread over the
// interval by the group's key, as Prometheus offsets its groups, so that
// groups loaded together do not tick together.
func (g *groupRunner) run() {
	defer close(g.done)
	tick := time.NewTimer(g.firstTick())
	defer tick.Stop()
	debounce := g.s.cfg.Evaluation.Debounce
	var wait *time.Timer
	for {
		select {
		case <-g.stop:
			return
		case <-g.trigger:
			start := time.Now()
			g.evaluate(triggerData)
			tick.Reset(g.interval)
			// Coalesce what arrives meanwhile into one evaluation after
			// the debounce period.
			if d := debounce - time.Since(start); d > 0 {
				if wait == nil {
					wait = time.NewTimer(d)
				} else {
					wait.Reset(d)
				}
				select {
				case <-g.stop:
					wait.Stop()
					return
				case <-wait.C:
				}
			}
		case <-tick.C:
			g.evaluate(triggerTick)
			tick.Reset(g.interval)
		}
	}
}

// firstTick is the wait before the group's first tick: a share of the
// interval fixed by the group's key.
func (g *groupRunner) firstTick() time.Duration {
	h := fnv.New64a()
	_, _ = h.Write([]byte(g.key))
	if d := time.Duration(h.Sum64() % uint64(g.interval)); d > 0 {
		return d
	}
	return g.interval
}

// halt stops the scheduler and waits for its evaluation to end.
func (g *groupRunner) halt() {
	g.stopOnce.Do(func() { close(g.stop) })
	<-g.done
}

// evaluate evaluates the group now, or at the newest triggering sample's
// time if that is ahead of the clock by no more than the allowed skew;
// "now" is when an evaluation slot is free, so a queued evaluation sees
// what arrived while it waited.
func (g *groupRunner) evaluate(trigger string) {
	g.s.acquireEvalSlot()
	defer g.s.releaseEvalSlot()
	now := g.s.now()
	arrival := g.arrival.Swap(0)
	ahead := g.ahead.Swap(0)
	hops := g.hops.Swap(noHops)
	ts := now
	if d := time.Duration(ahead-now.UnixMilli()) * time.Millisecond; d > 0 && d <= g.s.cfg.Evaluation.MaxFutureSkew {
		ts = time.UnixMilli(ahead)
	}
	if arrival > 0 {
		g.s.metrics.arrivalToEval.Observe(max(0, float64(now.UnixNano()-arrival)/1e9))
	}
	g.evalHolding(ts, trigger, hops)
}

// evalAt evaluates the group at ts once an evaluation slot is free.
func (g *groupRunner) evalAt(ts time.Time, trigger string, hops int32) {
	g.s.acquireEvalSlot()
	defer g.s.releaseEvalSlot()
	g.evalHolding(ts, trigger, hops)
}

// acquireEvalSlot waits for a free evaluation slot.
func (s *Service) acquireEvalSlot() { s.evalSlots <- struct{}{} }

func (s *Service) releaseEvalSlot() { <-s.evalSlots }

// evalHolding evaluates the group at ts (never before its previous
// evaluation); the caller holds an evaluation slot.
func (g *groupRunner) evalHolding(ts time.Time, trigger string, hops int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.evalHops = hops
	if ts.Before(g.lastTs) {
		ts = g.lastTs
	}
	g.lastTs = ts
	start := time.Now()
	rules.DefaultEvalIterationFunc(g.group.Context(), g.group, ts)
	g.duration.Observe(time.Since(start).Seconds())
	switch trigger {
	case triggerData:
		g.evalData.Inc()
	case triggerTick:
		g.evalTick.Inc()
	default:
		g.evalRestore.Inc()
	}
}
