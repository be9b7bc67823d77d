package monitor

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/ingest"
	"github.com/tmaflow/tmaflow/pkg/samples"
)

// Paths of the Prometheus-native ingest endpoints.
const (
	// RemoteWritePath takes Prometheus remote write 1.0 and 2.0.
	RemoteWritePath = "/api/v1/write"
	// ImportPath takes Prometheus text and OpenMetrics bodies.
	ImportPath = "/api/v1/import/prometheus"
	// PushPath is the prefix of the Pushgateway-style push path,
	// /metrics/job/<job>{/<label>/<value>}.
	PushPath = pushPathPrefix + "job"
)

// Handlers, the handler label of the Prometheus ingest metrics.
const (
	handlerRemoteWrite = "remote_write"
	handlerImport      = "import"
	handlerPush        = "push"
)

type promMetrics struct {
	limited   map[string]prometheus.Counter
	requests  *prometheus.CounterVec
	series    *prometheus.CounterVec
	samples   *prometheus.CounterVec
	exemplars prometheus.Counter
}

// Reasons a request is refused by the limits.
const (
	limitSeries = "series_per_request"
	limitRate   = "samples_per_second"
)

func newPromMetrics(f promauto.Factory) *promMetrics {
	limited := f.NewCounterVec(prometheus.CounterOpts{
		Name: "tmaflow_monitor_limited_requests_total",
		Help: "Remote write and push requests refused by -limits.*, by limit (series_per_request: 413, samples_per_second: 429).",
	}, []string{"limit"})
	return &promMetrics{
		limited: map[string]prometheus.Counter{
			limitSeries: limited.WithLabelValues(limitSeries),
			limitRate:   limited.WithLabelValues(limitRate),
		},
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_monitor_prometheus_requests_total",
			Help: "Requests to the Prometheus ingest endpoints (remote_write, import, push) by status code.",
		}, []string{"handler", "code"}),
		series: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_monitor_series_accepted_total",
			Help: "Series in remote write and pushed bodies acknowledged by the broker, by source (remote_write, openmetrics).",
		}, []string{"source"}),
		samples: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_monitor_samples_accepted_total",
			Help: "Samples in remote write and pushed bodies acknowledged by the broker, by source (remote_write, openmetrics).",
		}, []string{"source"}),
		exemplars: f.NewCounter(prometheus.CounterOpts{
			Name: "tmaflow_monitor_exemplars_not_stored_total",
			Help: "Exemplars received with accepted samples and not stored: sample batches carry no exemplars (remote write 2.0 answers report 0 written).",
		}),
	}
}

// servePrometheus serves the Prometheus ingest paths; false when path is
// none of them.
func (s *Service) servePrometheus(w http.ResponseWriter, r *http.Request) bool {
	var handler string
	var code int
	switch p := r.URL.Path; {
	case p == RemoteWritePath:
		handler, code = handlerRemoteWrite, s.remoteWrite(w, r)
	case p == ImportPath:
		handler, code = handlerImport, s.importText(w, r, false)
	case p == PushPath || strings.HasPrefix(p, PushPath+"/") || strings.HasPrefix(p, PushPath+"@base64/"):
		handler, code = handlerPush, s.importText(w, r, true)
	default:
		return false
	}
	s.metrics.prom.requests.WithLabelValues(handler, strconv.Itoa(code)).Inc()
	return true
}

// remoteWrite handles one POST /api/v1/write and returns its status code.
func (s *Service) remoteWrite(w http.ResponseWriter, r *http.Request) int {
	who, code := s.admit(w, r, false)
	if code != 0 {
		return code
	}
	defer s.release()
	v, err := remoteWriteVersion(r.Header.Get("Content-Type"))
	if err == nil {
		err = checkRemoteWriteEncoding(r.Header.Get("Content-Encoding"))
	}
	if err != nil {
		return s.fail(w, http.StatusUnsupportedMediaType, errorBody(errMediaType, "unsupported media type: "+err.Error(), nil, 0))
	}
	if v == rwV2 {
		// 2.0 senders read what was written from every answer; the
		// success path overwrites them.
		h := w.Header()
		h.Set(headerSamplesWritten, "0")
		h.Set(headerHistogramsWritten, "0")
		h.Set(headerExemplarsWritten, "0")
	}

	bp := s.bufs.Get().(*[]byte)
	defer s.putBuf(bp)
	body, code := s.readRequest(w, r, bp)
	if code != 0 {
		return code
	}
	req, err := decodeRemoteWrite(v, body, s.cfg.MaxDecodedBytes)
	if errors.Is(err, errDecodedTooLarge) {
		return s.fail(w, http.StatusRequestEntityTooLarge, errorBody(errTooLarge, err.Error()+"; the limit is "+strconv.FormatInt(s.cfg.MaxDecodedBytes, 10)+" bytes", nil, 0))
	}
	if err != nil {
		return s.fail(w, http.StatusBadRequest, errorBody(errBadData, err.Error()+"; nothing was accepted", nil, 0))
	}
	s.metadata.update(who.tenant, req.families)
	s.metadata.fill(who.tenant, req.series)
	if code := s.publishSeries(w, r, who.tenant, samples.SourceRemoteWrite, req.series, req.samples, req.exemplars); code != 0 {
		return code
	}
	if v == rwV2 {
		w.Header().Set(headerSamplesWritten, strconv.Itoa(req.samples))
	}
	w.WriteHeader(http.StatusNoContent)
	return http.StatusNoContent
}

// importText handles a Prometheus text or OpenMetrics body posted to
// /api/v1/import/prometheus (push false: extra_label query parameters)
// or pushed to /metrics/job/… (push true: labels from the path; PUT as
// well as POST, both only add samples: tmaflow keeps no push groups).
func (s *Service) importText(w http.ResponseWriter, r *http.Request, push bool) int {
	who, code := s.admit(w, r, push)
	if code != 0 {
		return code
	}
	defer s.release()
	format, err := ingest.TextFormatOf(r.Header.Get("Content-Type"))
	if err != nil {
		return s.fail(w, http.StatusUnsupportedMediaType, errorBody(errMediaType, "unsupported media type: "+err.Error(), nil, 0))
	}
	enc := r.Header.Get("Content-Encoding")
	gzipped := strings.EqualFold(enc, "gzip")
	if enc != "" && !gzipped && !strings.EqualFold(enc, "identity") {
		return s.fail(w, http.StatusUnsupportedMediaType, errorBody(errMediaType, "unsupported media type: content encoding "+strconv.Quote(enc)+": send gzip or none", nil, 0))
	}
	var extra []samples.Label
	if push {
		extra, err = pushLabels(r.URL.EscapedPath())
	} else {
		extra, err = importLabels(r.URL.Query())
	}
	if err != nil {
		return s.fail(w, http.StatusBadRequest, errorBody(errBadData, err.Error(), nil, 0))
	}

	bp := s.bufs.Get().(*[]byte)
	defer s.putBuf(bp)
	body, code := s.readRequest(w, r, bp)
	if code != 0 {
		return code
	}
	if gzipped {
		if body, code = s.gunzip(w, body); code != 0 {
			return code
		}
	}
	series, n, exemplars, err := ingest.ParseText(format, body, s.now().UnixMilli(), extra)
	if err != nil {
		return s.fail(w, http.StatusBadRequest, errorBody(errBadData, err.Error()+"; nothing was accepted", nil, 0))
	}
	if code := s.publishSeries(w, r, who.tenant, samples.SourceOpenMetrics, series, n, exemplars); code != 0 {
		return code
	}
	b := append(make([]byte, 0, 64), `{"status":"ok","series":`...)
	b = strconv.AppendInt(b, int64(len(series)), 10)
	b = append(b, `,"samples":`...)
	b = strconv.AppendInt(b, int64(n), 10)
	s.resp.write(w, http.StatusOK, append(b, '}'))
	return http.StatusOK
}

// gunzip decompresses a body, at most max-decoded-bytes.
func (s *Service) gunzip(w http.ResponseWriter, body []byte) ([]byte, int) {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, s.fail(w, http.StatusBadRequest, errorBody(errBadData, "decode gzip body: "+err.Error(), nil, 0))
	}
	out, err := io.ReadAll(io.LimitReader(zr, s.cfg.MaxDecodedBytes+1))
	if err != nil {
		return nil, s.fail(w, http.StatusBadRequest, errorBody(errBadData, "decode gzip body: "+err.Error(), nil, 0))
	}
	if int64(len(out)) > s.cfg.MaxDecodedBytes {
		return nil, s.fail(w, http.StatusRequestEntityTooLarge, errorBody(errTooLarge,
			"decompressed body larger than "+strconv.FormatInt(s.cfg.MaxDecodedBytes, 10)+" bytes", nil, 0))
	}
	return out, 0
}

// publishSeries checks the tenant's limits, publishes series to
// topic-samples and counts them once the broker acknowledged every
// record. It answers 413, 429 or 503 itself and returns the code, else 0
// (nothing answered yet).
func (s *Service) publishSeries(w http.ResponseWriter, r *http.Request, tenant, source string, series []samples.Series, n, exemplars int) int {
	if limit := s.cfg.Limits.MaxSeriesPerRequest; limit > 0 && len(series) > limit {
		s.metrics.prom.limited[limitSeries].Inc()
		return s.fail(w, http.StatusRequestEntityTooLarge, errorBody(errTooLarge, strconv.Itoa(len(series))+
			" series in one request, the limit is "+strconv.Itoa(limit)+" (-limits.max-series-per-request): send smaller requests; nothing was accepted", nil, 0))
	}
	if ok, wait := s.limiter.take(tenant, n); !ok {
		s.metrics.prom.limited[limitRate].Inc()
		w.Header()["Retry-After"] = retryAfter(wait)
		return s.fail(w, http.StatusTooManyRequests, errorBody(errOverloaded, "tenant "+strconv.Quote(tenant)+" is over its limit of "+
			strconv.FormatFloat(s.cfg.Limits.SamplesPerSecond, 'g', -1, 64)+" samples/s (-limits.samples-per-second): retry later; nothing was accepted", nil, 0))
	}
	if len(series) > 0 {
		records := ingest.SampleRecords(tenant, source, s.now().UnixNano(), series)
		err := s.send(r.Context(), contract.TopicSamples, records)
		if err != nil {
			s.limiter.giveBack(tenant, n)
		}
		if errors.Is(err, bus.ErrTooLarge) {
			return s.fail(w, http.StatusRequestEntityTooLarge, s.resp.recordTooLarge)
		}
		if err != nil {
			s.logger.Debug("publish samples", "err", err, "series", len(series), "records", len(records))
			s.checkBrokerSoon()
			w.Header()["Retry-After"] = s.resp.retryAfter
			return s.fail(w, http.StatusServiceUnavailable, s.resp.unavailable)
		}
	}
	s.metrics.prom.series.WithLabelValues(source).Add(float64(len(series)))
	s.metrics.prom.samples.WithLabelValues(source).Add(float64(n))
	s.metrics.prom.exemplars.Add(float64(exemplars))
	return 0
}
