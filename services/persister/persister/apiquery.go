package persister

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
)

func queryOpts(r *http.Request) (promql.QueryOpts, error) {
	var lookback time.Duration
	if v := r.FormValue("lookback_delta"); v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return nil, fmt.Errorf("error parsing lookback delta duration: %w", err)
		}
		lookback = d
	}
	return promql.NewPrometheusQueryOpts(false, lookback), nil
}

// withTimeout applies the timeout parameter to the request context.
func withTimeout(r *http.Request) (context.Context, context.CancelFunc, error) {
	ctx := r.Context()
	v := r.FormValue("timeout")
	if v == "" {
		return ctx, func() {}, nil
	}
	d, err := parseDuration(v)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	return ctx, cancel, nil
}

func (s *Service) query(r *http.Request, tenant string) apiResult {
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return invalidParam(err, "limit")
	}
	ts, err := parseTimeParam(r, "time", s.now())
	if err != nil {
		return invalidParam(err, "time")
	}
	return s.runQuery(r, tenant, limit, func(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string) (promql.Query, error) {
		return s.engine.NewInstantQuery(ctx, q, opts, qs, ts)
	})
}

func (s *Service) queryRange(r *http.Request, tenant string) apiResult {
	limit, err := parseLimit(r.FormValue("limit"))
	if err != nil {
		return invalidParam(err, "limit")
	}
	start, err := parseTime(r.FormValue("start"))
	if err != nil {
		return invalidParam(err, "start")
	}
	end, err := parseTime(r.FormValue("end"))
	if err != nil {
		return invalidParam(err, "end")
	}
	if end.Before(start) {
		return invalidParam(errors.New("end timestamp must not be before start time"), "end")
	}
	step, err := parseDuration(r.FormValue("step"))
	if err != nil {
		return invalidParam(err, "step")
	}
	if step <= 0 {
		return invalidParam(errors.New("zero or negative query resolution step widths are not accepted. Try a positive integer"), "step")
	}
	if end.Sub(start)/step > maxPointsPerSeries {
		return apiResult{err: badData(errors.New("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"))}
	}
	return s.runQuery(r, tenant, limit, func(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string) (promql.Query, error) {
		return s.engine.NewRangeQuery(ctx, q, opts, qs, start, end, step)
	})
}

// runQuery answers /query and /query_range once their own parameters are
// read: it applies timeout and lookback_delta, makes the query of the
// query parameter with newQuery and runs it.
func (s *Service) runQuery(r *http.Request, tenant string, limit int,
	newQuery func(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string) (promql.Query, error),
) apiResult {
	ctx, cancel, err := withTimeout(r)
	if err != nil {
		return invalidParam(err, "timeout")
	}
	defer cancel()
	opts, err := queryOpts(r)
	if err != nil {
		return apiResult{err: badData(err)}
	}
	qry, err := newQuery(ctx, s.queryable(tenant), opts, r.FormValue("query"))
	if err != nil {
		return invalidParam(err, "query")
	}
	return s.exec(ctx, qry, limit)
}

// exec runs a query; the result stays valid until the finalizer closes it.
func (s *Service) exec(ctx context.Context, qry promql.Query, limit int) apiResult {
	res := qry.Exec(ctx)
	if res.Err != nil {
		return apiResult{err: queryAPIError(res.Err), warnings: res.Warnings, finalizer: qry.Close}
	}
	warnings := res.Warnings
	if limit > 0 {
		truncated := false
		switch v := res.Value.(type) {
		case promql.Matrix:
			if len(v) > limit {
				res.Value, truncated = v[:limit], true
			}
		case promql.Vector:
			if len(v) > limit {
				res.Value, truncated = v[:limit], true
			}
		}
		if truncated {
			warnings = warnings.Add(errors.New("results truncated due to limit"))
		}
	}
	return apiResult{data: queryData{ResultType: res.Value.Type(), Result: res.Value}, warnings: warnings, finalizer: qry.Close}
}

// queryExemplars answers as Prometheus does for series without exemplars:
// tmaflow's batches carry none.
func (s *Service) queryExemplars(r *http.Request, _ string) apiResult {
	start, err := parseTimeParam(r, "start", minTime)
	if err != nil {
		return invalidParam(err, "start")
	}
	end, err := parseTimeParam(r, "end", maxTime)
	if err != nil {
		return invalidParam(err, "end")
	}
	if end.Before(start) {
		return apiResult{err: badData(errors.New("end timestamp must not be before start timestamp"))}
	}
	if _, err := s.parser.ParseExpr(r.FormValue("query")); err != nil {
		return apiResult{err: badData(err)}
	}
	return apiResult{data: []struct{}{}}
}

func (s *Service) formatQuery(r *http.Request, _ string) apiResult {
	expr, err := s.parser.ParseExpr(r.FormValue("query"))
	if err != nil {
		return invalidParam(err, "query")
	}
	return apiResult{data: expr.Pretty(0)}
}
