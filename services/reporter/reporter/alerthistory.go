package reporter

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
)

// AlertHistory returns the spans a tenant's alerts matching ms were
// firing within [start, end), and how many records it could not read.
type AlertHistory func(ctx context.Context, tenant string, ms []*labels.Matcher, start, end time.Time) (spans []AlertSpan, skipped int, err error)

// alertRecord is the part of a topic-alerts value (the ruler's alert) the
// history reads.
type alertRecord struct {
	Labels      map[string]string `json:"labels"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	State       string            `json:"state"`
	Fingerprint string            `json:"fingerprint"`
}

// TopicAlertHistory reads topic-alerts from its first record at every
// call: alert changes are few, and the topic's retention bounds them.
func TopicAlertHistory(r bus.Reader) AlertHistory {
	return func(ctx context.Context, tenant string, ms []*labels.Matcher, start, end time.Time) ([]AlertSpan, int, error) {
		type change struct {
			at  time.Time
			rec alertRecord
		}
		var (
			mu      sync.Mutex
			changes = map[string][]change{}
			bad     int
		)
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		err := r.Consume(rctx, contract.TopicAlerts, time.Time{}, func(rec bus.Record) {
			if rec.Headers[contract.HeaderTenant] != tenant {
				return
			}
			var a alertRecord
			if err := json.Unmarshal(rec.Value, &a); err != nil || a.StartsAt.IsZero() {
				mu.Lock()
				bad++
				mu.Unlock()
				return
			}
			if !matches(ms, a.Labels) {
				return
			}
			key := a.Fingerprint
			if key == "" {
				key = labelKey(a.Labels)
			}
			mu.Lock()
			changes[key] = append(changes[key], change{at: rec.Time, rec: a})
			mu.Unlock()
		}, cancel)
		if err != nil {
			return nil, 0, fmt.Errorf("read %s: %w", contract.TopicAlerts, err)
		}
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		var out []AlertSpan
		add := func(l map[string]string, from, to time.Time) {
			from, to = maxTime(from, start), minTime(to, end)
			if from.Before(to) {
				out = append(out, AlertSpan{Labels: l, Start: from.UTC(), End: to.UTC(), Duration: to.Sub(from).Seconds()})
			}
		}
		for _, cs := range changes {
			slices.SortStableFunc(cs, func(a, b change) int { return a.at.Compare(b.at) })
			var open *alertRecord
			for _, c := range cs {
				switch {
				case c.rec.State == "resolved" && open != nil:
					to := c.rec.EndsAt
					if to.IsZero() {
						to = c.at
					}
					add(open.Labels, open.StartsAt, to)
					open = nil
				case c.rec.State != "resolved" && open == nil:
					rec := c.rec
					open = &rec
				}
			}
			if open != nil {
				add(open.Labels, open.StartsAt, end)
			}
		}
		slices.SortFunc(out, func(a, b AlertSpan) int {
			return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(labelKey(a.Labels), labelKey(b.Labels)))
		})
		return out, bad, nil
	}
}

func matches(ms []*labels.Matcher, l map[string]string) bool {
	for _, m := range ms {
		if !m.Matches(l[m.Name]) {
			return false
		}
	}
	return true
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
