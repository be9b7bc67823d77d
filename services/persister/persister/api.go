package persister

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

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

// queryable is the TSDB as tenant sees it.
func (s *Service) queryable(tenant string) storage.Queryable {
	return tenantQueryable{Queryable: s.db, tenant: tenant}
}
