package ruler

import (
	"time"

	"github.com/prometheus/prometheus/rules"
)

// restore rebuilds the alert state of every group of rs from the
// replayed window, so a restarted ruler neither misses nor re-fires
// alerts:
//
//   - each group is evaluated, silently, at its interval over the last
//     stretch of the window that can still matter (the longest for +
//     keep_firing_for of its rules, plus an interval): a pending alert
//     gets back the activation time the data gives it and fires when its
//     `for` ends, as it would have without the restart;
//   - an alert that topic-alerts says was firing keeps its start time, so
//     Alertmanager sees a resend of the same alert;
//   - an alert that was firing but no longer holds is sent resolved.
//
// Under reloadMu, before the schedulers start.
func (s *Service) restore(rs *ruleSet) {
	now := s.now()
	firing := s.sink.restoredFiring()
	seen := map[string]bool{}
	for _, g := range rs.groups {
		s.restoreGroup(g, now)
		for _, ar := range g.group.AlertingRules() {
			ar.ForEachActiveAlert(func(a *rules.Alert) {
				key := string(AlertKey(g.tenant, Fingerprint(labelMap(a.Labels))))
				seen[key] = true
				if was, ok := firing[key]; ok && a.ResolvedAt.IsZero() {
					a.State = rules.StateFiring
					a.FiredAt = was.StartsAt
				}
				// Send at the first evaluation: a resend for Alertmanager.
				a.LastSentAt = time.Time{}
			})
		}
	}
	for key, was := range firing {
		if seen[key] || !s.keepTenant(was.Tenant) {
			continue
		}
		resolved := *was
		resolved.State = StateResolved
		resolved.EndsAt = now
		s.sink.deliver([]*Alert{&resolved})
	}
}

// restoreGroup evaluates g with notifications and publishing off from
// now − horizon to now.
func (s *Service) restoreGroup(g *groupRunner, now time.Time) {
	horizon := g.interval
	for _, ar := range g.group.AlertingRules() {
		horizon = max(horizon, ar.HoldDuration()+ar.KeepFiringFor()+g.interval)
	}
	horizon = min(horizon, s.cfg.Window)
	// Nothing is known before the window's first sample: evaluating
	// earlier would hold absent() and `for` rules true over data never
	// seen, and fire them at once on a fresh start.
	from := now.Add(-horizon)
	if first, ok := s.win.firstSample(); !ok {
		from = now
	} else if first.After(from) {
		from = first
	}
	step := max(g.interval, horizon/time.Duration(s.cfg.Evaluation.RestoreMaxSteps))
	g.quiet.Store(true)
	defer g.quiet.Store(false)
	for ts := from; ts.Before(now); ts = ts.Add(step) {
		g.evalAt(ts, triggerRestore, noHops)
	}
	g.evalAt(now, triggerRestore, noHops)
}
