package persister

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// Error types of the API, as Prometheus names them.
const (
	errorBadData   = "bad_data"
	errorExec      = "execution"
	errorTimeout   = "timeout"
	errorCanceled  = "canceled"
	errorInternal  = "internal"
	errorNotFound  = "not_found"
	errorAuth      = "unauthorized" // ours: Prometheus has no authentication
	errorForbidden = "forbidden"    // ours
)

// statusClientClosedConnection is nginx's code, which Prometheus uses for
// canceled queries.
const statusClientClosedConnection = 499

type apiError struct {
	typ string
	err error
}

func badData(err error) *apiError { return &apiError{errorBadData, err} }

func invalidParam(err error, name string) apiResult {
	return apiResult{err: badData(fmt.Errorf("invalid parameter %q: %w", name, err))}
}

// apiResult is what an endpoint returns; finalizer (if any) runs after
// the response is written, since results may reference query memory.
type apiResult struct {
	data      any
	err       *apiError
	warnings  annotations.Annotations
	finalizer func()
}

type apiFunc func(r *http.Request, tenant string) apiResult

// Endpoint names, the handler label of the API metrics.
const (
	hQuery       = "query"
	hQueryRange  = "query_range"
	hSeries      = "series"
	hLabels      = "labels"
	hLabelValues = "label_values"
	hMetadata    = "metadata"
	hExemplars   = "query_exemplars"
	hBuildInfo   = "buildinfo"
	hFormatQuery = "format_query"
)

// registerAPI adds the query API to mux.
func (s *Service) registerAPI(mux *http.ServeMux) {
	const p = "/api/v1"
	add := func(methods []string, path, name string, f apiFunc, opts apiOpts) {
		h := s.apiHandler(name, f, opts)
		for _, m := range methods {
			mux.Handle(m+" "+p+path, h)
		}
	}
	both := []string{http.MethodGet, http.MethodPost}
	add(both, "/query", hQuery, s.query, apiOpts{tenant: true, limited: true})
	add(both, "/query_range", hQueryRange, s.queryRange, apiOpts{tenant: true, limited: true})
	add(both, "/query_exemplars", hExemplars, s.queryExemplars, apiOpts{tenant: true})
	add(both, "/series", hSeries, s.series, apiOpts{tenant: true, limited: true})
	add(both, "/labels", hLabels, s.labelNames, apiOpts{tenant: true, limited: true})
	add([]string{http.MethodGet}, "/label/{name}/values", hLabelValues, s.labelValues, apiOpts{tenant: true, limited: true})
	add([]string{http.MethodGet}, "/metadata", hMetadata, s.metricMetadata, apiOpts{tenant: true})
	add([]string{http.MethodGet}, "/status/buildinfo", hBuildInfo, s.buildInfo, apiOpts{})
	add(both, "/format_query", hFormatQuery, s.formatQuery, apiOpts{})
}

type apiOpts struct {
	tenant  bool // needs a tenant: reads data
	limited bool // counts against query.max-concurrency
}

func (s *Service) apiHandler(name string, f apiFunc, opts apiOpts) http.Handler {
	byCode := map[int]interface{ Inc() }{}
	for _, c := range []int{200, 204, 400, 401, 403, 422, 499, 500, 503} {
		byCode[c] = s.apiMetrics.requests.WithLabelValues(name, strconv.Itoa(c))
	}
	duration := s.apiMetrics.duration.WithLabelValues(name)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		code := s.serveAPI(w, r, f, opts)
		duration.Observe(time.Since(start).Seconds())
		if c, ok := byCode[code]; ok {
			c.Inc()
		} else {
			s.apiMetrics.requests.WithLabelValues(name, strconv.Itoa(code)).Inc()
		}
	})
}

// serveAPI runs f and writes its answer, returning the status code.
func (s *Service) serveAPI(w http.ResponseWriter, r *http.Request, f apiFunc, opts apiOpts) int {
	tenant := ""
	if opts.tenant {
		t, aerr := s.tenantOf(r)
		if aerr != nil {
			s.apiMetrics.auth.WithLabelValues(aerr.reason).Inc()
			typ := errorAuth
			if aerr.status == http.StatusForbidden {
				typ = errorForbidden
			} else if s.verifier != nil {
				w.Header().Set("WWW-Authenticate", `Basic realm="tmaflow", charset="UTF-8"`)
			}
			return s.writeError(w, aerr.status, &apiError{typ, aerr.err})
		}
		tenant = t
	}
	if opts.limited {
		select {
		case s.querySlots <- struct{}{}:
			defer func() { <-s.querySlots }()
		case <-r.Context().Done():
			return s.writeError(w, statusClientClosedConnection, &apiError{errorCanceled, r.Context().Err()})
		}
	}
	res := f(r, tenant)
	if res.finalizer != nil {
		defer res.finalizer()
	}
	if res.err != nil {
		return s.writeError(w, errorCode(res.err.typ), res.err)
	}
	if res.data == nil {
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent
	}
	warn, info := res.warnings.AsStrings(r.FormValue("query"), 10, 10)
	b, err := response{Status: "success", Data: res.data, Warnings: warn, Infos: info}.encode()
	if err != nil {
		s.logger.Error("encode api response", "path", r.URL.Path, "err", err)
		return s.writeError(w, http.StatusInternalServerError, &apiError{errorInternal, err})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(b); err != nil {
		s.logger.Debug("write api response", "path", r.URL.Path, "err", err)
	}
	return http.StatusOK
}

func (s *Service) writeError(w http.ResponseWriter, code int, e *apiError) int {
	b, err := response{Status: "error", ErrorType: e.typ, Error: e.err.Error()}.encode()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if _, err := w.Write(b); err != nil {
		s.logger.Debug("write api error", "err", err)
	}
	return code
}

// errorCode is Prometheus' status code of an error type.
func errorCode(typ string) int {
	switch typ {
	case errorBadData:
		return http.StatusBadRequest
	case errorExec:
		return http.StatusUnprocessableEntity
	case errorCanceled:
		return statusClientClosedConnection
	case errorTimeout:
		return http.StatusServiceUnavailable
	case errorNotFound:
		return http.StatusNotFound
	default:
		return http.StatusInternalServerError
	}
}

// queryAPIError classifies an error of query evaluation as Prometheus does.
func queryAPIError(err error) *apiError {
	var (
		eqc promql.ErrQueryCanceled
		eqt promql.ErrQueryTimeout
		es  promql.ErrStorage
	)
	switch {
	case errors.As(err, &eqc):
		return &apiError{errorCanceled, err}
	case errors.As(err, &eqt):
		return &apiError{errorTimeout, err}
	case errors.As(err, &es):
		return &apiError{errorInternal, err}
	case errors.Is(err, context.Canceled):
		return &apiError{errorCanceled, err}
	}
	return &apiError{errorExec, err}
}

// queryable is the TSDB as tenant sees it.
func (s *Service) queryable(tenant string) storage.Queryable {
	return tenantQueryable{Queryable: s.db, tenant: tenant}
}

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
	ctx, cancel, err := withTimeout(r)
	if err != nil {
		return invalidParam(err, "timeout")
	}
	defer cancel()
	opts, err := queryOpts(r)
	if err != nil {
		return apiResult{err: badData(err)}
	}
	qry, err := s.engine.NewInstantQuery(ctx, s.queryable(tenant), opts, r.FormValue("query"), ts)
	if err != nil {
		return invalidParam(err, "query")
	}
	return s.exec(ctx, qry, limit)
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
	ctx, cancel, err := withTimeout(r)
	if err != nil {
		return invalidParam(err, "timeout")
	}
	defer cancel()
	opts, err := queryOpts(r)
	if err != nil {
		return apiResult{err: badData(err)}
	}
	qry, err := s.engine.NewRangeQuery(ctx, s.queryable(tenant), opts, r.FormValue("query"), start, end, step)
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

// hintLimit asks storage for one more than the limit, so truncation shows.
func hintLimit(limit int) int {
	if limit > 0 {
		return limit + 1
	}
	return 0
}

func (s *Service) labelNames(r *http.Request, tenant string) apiResult {
	return s.labelSet(r, tenant, queryAPIError, func(q storage.Querier, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelNames(r.Context(), hints, ms...)
	})
}

func (s *Service) labelValues(r *http.Request, tenant string) apiResult {
	name := r.PathValue("name")
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if !model.UTF8Validation.IsValidLabelName(name) {
		return apiResult{err: badData(fmt.Errorf("invalid label name: %q", name))}
	}
	openErr := func(err error) *apiError { return &apiError{errorExec, err} }
	return s.labelSet(r, tenant, openErr, func(q storage.Querier, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelValues(r.Context(), name, hints, ms...)
	})
}

// labelSet answers /labels and /label/<name>/values: the union of what
// list returns for each match[] set (or none), sorted and cut to the
// limit. openErr types a failure to open the querier.
func (s *Service) labelSet(r *http.Request, tenant string, openErr func(error) *apiError,
	list func(storage.Querier, *storage.LabelHints, []*labels.Matcher) ([]string, annotations.Annotations, error),
) apiResult {
	sp, bad := s.parseSelectParams(r, matchersBadData)
	if bad != nil {
		return *bad
	}
	limit, start, end, sets := sp.limit, sp.start, sp.end, sp.sets
	q, err := s.queryable(tenant).Querier(timestamp.FromTime(start), timestamp.FromTime(end))
	if err != nil {
		return apiResult{err: openErr(err)}
	}
	defer func() { s.closeQuerier(q) }()
	hints := &storage.LabelHints{Limit: hintLimit(limit)}
	if len(sets) == 0 {
		sets = [][]*labels.Matcher{nil}
	}
	var warnings annotations.Annotations
	set := map[string]struct{}{}
	for _, ms := range sets {
		vals, w, err := list(q, hints, ms)
		warnings.Merge(w)
		if err != nil {
			return apiResult{err: &apiError{errorExec, err}, warnings: warnings}
		}
		for _, v := range vals {
			set[v] = struct{}{}
		}
	}
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	slices.Sort(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
		warnings = warnings.Add(errors.New("results truncated due to limit"))
	}
	return apiResult{data: out, warnings: warnings}
}

func (s *Service) series(r *http.Request, tenant string) apiResult {
	if err := r.ParseForm(); err != nil {
		return apiResult{err: badData(fmt.Errorf("error parsing form values: %w", err))}
	}
	if len(r.Form["match[]"]) == 0 {
		return apiResult{err: badData(errors.New("no match[] parameter provided"))}
	}
	sp, bad := s.parseSelectParams(r, matchersInvalidParam)
	if bad != nil {
		return *bad
	}
	limit, start, end, sets := sp.limit, sp.start, sp.end, sp.sets
	q, err := s.queryable(tenant).Querier(timestamp.FromTime(start), timestamp.FromTime(end))
	if err != nil {
		return apiResult{err: queryAPIError(err)}
	}
	defer func() { s.closeQuerier(q) }()
	hints := &storage.SelectHints{
		Start: timestamp.FromTime(start),
		End:   timestamp.FromTime(end),
		Func:  "series", // no samples needed
		Limit: hintLimit(limit),
	}
	var ss storage.SeriesSet
	if len(sets) > 1 {
		all := make([]storage.SeriesSet, 0, len(sets))
		for _, ms := range sets {
			all = append(all, q.Select(r.Context(), true, hints, ms...))
		}
		ss = storage.NewMergeSeriesSet(all, 0, storage.ChainedSeriesMerge)
	} else {
		ss = q.Select(r.Context(), false, hints, sets[0]...)
	}
	out := seriesData{}
	warnings := ss.Warnings()
	for ss.Next() {
		out = append(out, ss.At().Labels())
		if limit > 0 && len(out) > limit {
			out = out[:limit]
			warnings = warnings.Add(errors.New("results truncated due to limit"))
			break
		}
	}
	if err := ss.Err(); err != nil {
		return apiResult{err: queryAPIError(err), warnings: warnings}
	}
	return apiResult{data: out, warnings: warnings}
}

func (s *Service) metricMetadata(r *http.Request, tenant string) apiResult {
	limit := -1
	if v := r.FormValue("limit"); v != "" {
		var err error
		if limit, err = strconv.Atoi(v); err != nil {
			return apiResult{err: badData(errors.New("limit must be a number"))}
		}
	}
	if v := r.FormValue("limit_per_metric"); v != "" {
		// One entry per metric is all there is, so any limit holds.
		if _, err := strconv.Atoi(v); err != nil {
			return apiResult{err: badData(errors.New("limit_per_metric must be a number"))}
		}
	}
	return apiResult{data: s.meta.query(tenant, r.FormValue("metric"), limit)}
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

// buildInfo is /api/v1/status/buildinfo. Version is the Prometheus
// release whose PromQL engine and TSDB are embedded, since clients
// (Grafana) choose features by it.
type buildInfo struct {
	Application string `json:"application"`
	Version     string `json:"version"`
	Revision    string `json:"revision"`
	Branch      string `json:"branch"`
	BuildUser   string `json:"buildUser"`
	BuildDate   string `json:"buildDate"`
	GoVersion   string `json:"goVersion"`
}

func (s *Service) buildInfo(*http.Request, string) apiResult { return apiResult{data: s.build} }

func newBuildInfo() buildInfo {
	b := buildInfo{Application: "tmaflow", Version: "3.0.0", GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	for _, d := range info.Deps {
		if d.Path == "github.com/prometheus/prometheus" {
			b.Version = prometheusRelease(d.Version, b.Version)
		}
	}
	for _, kv := range info.Settings {
		switch kv.Key {
		case "vcs.revision":
			b.Revision = kv.Value
		case "vcs.time":
			b.BuildDate = kv.Value
		}
	}
	return b
}

// prometheusRelease maps the Go module version of Prometheus 3 (v0.3MM.P)
// to its release (3.MM.P).
func prometheusRelease(mod, fallback string) string {
	v, ok := strings.CutPrefix(mod, "v0.")
	if !ok {
		return fallback
	}
	minor, patch, ok := strings.Cut(v, ".")
	if !ok || len(minor) < 3 || minor[0] != '3' {
		return fallback
	}
	m, err := strconv.Atoi(minor[1:])
	if err != nil {
		return fallback
	}
	patch, _, _ = strings.Cut(patch, "-")
	return fmt.Sprintf("3.%d.%s", m, patch)
}

func (s *Service) closeQuerier(q storage.Querier) {
	if err := q.Close(); err != nil {
		s.logger.Warn("close tsdb querier", "err", err)
	}
}

// selectParams are the parameters /series, /labels and
// /label/<name>/values share.
type selectParams struct {
	limit      int
	start, end time.Time
	sets       [][]*labels.Matcher
}

// Prometheus reports a bad match[] as bad_data on /labels and label values,
// and as an invalid parameter on /series.
func matchersBadData(err error) apiResult      { return apiResult{err: badData(err)} }
func matchersInvalidParam(err error) apiResult { return invalidParam(err, "match[]") }

func (s *Service) parseSelectParams(r *http.Request, matchersErr func(error) apiResult) (selectParams, *apiResult) {
	var sp selectParams
	var err error
	fail := func(res apiResult) (selectParams, *apiResult) { return sp, &res }
	if sp.limit, err = parseLimit(r.FormValue("limit")); err != nil {
		return fail(invalidParam(err, "limit"))
	}
	if sp.start, err = parseTimeParam(r, "start", minTime); err != nil {
		return fail(invalidParam(err, "start"))
	}
	if sp.end, err = parseTimeParam(r, "end", maxTime); err != nil {
		return fail(invalidParam(err, "end"))
	}
	if sp.sets, err = parseMatchers(s.parser, r.Form["match[]"]); err != nil {
		return fail(matchersErr(err))
	}
	return sp, nil
}
