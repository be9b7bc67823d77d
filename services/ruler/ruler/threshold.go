package ruler

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// The commonest alert condition is a threshold: an instant selector
// compared with a number (`cpu_usage_percent > 90`). Event-driven, a
// fleet-wide one is evaluated for every batch of any series it selects,
// and the PromQL engine spends ~0.6 ms and ~570 KB on 1,000 series per
// evaluation (query setup, a series set with every label set, point
// slices), most of it for series that do not cross. A threshold is
// answered here from the newest samples instead, building labels only for
// the series that cross; anything else, and a threshold whose series are
// not all served by the newest-sample cache, goes to the engine. The
// answer is the engine's by construction — PromQL's comparison of a
// vector with a scalar, without bool, keeps the vector's samples (value
// and labels unchanged) for which the float comparison holds — and
// TestThresholdMatchesEngine checks it against the engine.

// threshold is `selector op number` or `number op selector`, op a
// comparison without bool, the selector without offset or @.
type threshold struct {
	matchers    []*labels.Matcher
	op          parser.ItemType
	number      float64
	numberFirst bool
}

// thresholdOf returns e as a threshold, if it is one.
func thresholdOf(e parser.Expr) (threshold, bool) {
	b, ok := unparen(e).(*parser.BinaryExpr)
	if !ok || b.ReturnBool || !b.Op.IsComparisonOperator() {
		return threshold{}, false
	}
	t := threshold{op: b.Op}
	sel, num := unparen(b.LHS), unparen(b.RHS)
	if _, isNum := sel.(*parser.NumberLiteral); isNum {
		sel, num = num, sel
		t.numberFirst = true
	}
	vs, ok := sel.(*parser.VectorSelector)
	if !ok || vs.OriginalOffset != 0 || vs.OriginalOffsetExpr != nil || vs.Timestamp != nil || vs.StartOrEnd != 0 || vs.Anchored || vs.Smoothed {
		return threshold{}, false
	}
	n, ok := num.(*parser.NumberLiteral)
	if !ok {
		return threshold{}, false
	}
	t.matchers, t.number = vs.LabelMatchers, n.Val
	return t, true
}

func unparen(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

// holds reports whether the comparison keeps a series of value v.
func (t threshold) holds(v float64) bool {
	lhs, rhs := v, t.number
	if t.numberFirst {
		lhs, rhs = rhs, lhs
	}
	switch t.op {
	case parser.EQLC:
		return lhs == rhs
	case parser.NEQ:
		return lhs != rhs
	case parser.GTR:
		return lhs > rhs
	case parser.LSS:
		return lhs < rhs
	case parser.GTE:
		return lhs >= rhs
	case parser.LTE:
		return lhs <= rhs
	}
	return false
}

// thresholdQueryFunc answers threshold expressions from the newest
// samples of q, confined by the tenant matcher, and the rest with
// fallback. Expressions are parsed once.
func thresholdQueryFunc(q latestQueryable, tenant *labels.Matcher, p parser.Parser, fallback rules.QueryFunc) rules.QueryFunc {
	var plans sync.Map // expression → *threshold, nil if none
	return func(ctx context.Context, qs string, ts time.Time) (promql.Vector, error) {
		plan, seen := plans.Load(qs)
		if !seen {
			var t *threshold
			if e, err := p.ParseExpr(qs); err == nil {
				if th, ok := thresholdOf(e); ok {
					th.matchers = append(slices.Clip(th.matchers), tenant)
					t = &th
				}
			}
			plan, _ = plans.LoadOrStore(qs, t)
		}
		if t := plan.(*threshold); t != nil {
			if v, ok := q.filterLatest(ctx, t, ts.UnixMilli()); ok {
				return v, nil
			}
		}
		return fallback(ctx, qs, ts)
	}
}

// filterLatest evaluates t at time ts (ms) from the newest samples: the
// series whose newest sample is in the lookback before ts, not a
// staleness marker, and satisfies t. False if a selected series' newest
// sample is not known here or is after ts.
func (q latestQueryable) filterLatest(ctx context.Context, t *threshold, ts int64) (promql.Vector, bool) {
	var out promql.Vector
	n, served := q.withNewest(ctx, t.matchers, false, ts, func(ix tsdb.IndexReader, refs []storage.SeriesRef, pts []latestPoint) bool {
		var builder labels.ScratchBuilder
		for i, ref := range refs {
			pt := pts[i]
			// The lookback is open at its start, as the engine's.
			if pt.t <= ts-q.lookback || value.IsStaleNaN(pt.v) || !t.holds(pt.v) {
				continue
			}
			if err := ix.Series(ref, &builder, nil); err != nil {
				if errors.Is(err, storage.ErrNotFound) {
					continue // removed by a truncation meanwhile
				}
				return false
			}
			out = append(out, promql.Sample{Metric: builder.Labels(), T: ts, F: pt.v})
		}
		return true
	})
	if !served {
		return nil, false // the engine answers, and counts the series it reads
	}
	q.cache.served.Add(int64(n))
	return out, true
}
