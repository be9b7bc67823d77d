package monitor

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Auth failure reasons.
const (
	authMissing   = "missing"   // no or malformed credentials
	authInvalid   = "invalid"   // unknown probe or wrong secret
	authForbidden = "forbidden" // a message of another probe
)

type metrics struct {
	requests     *prometheus.CounterVec
	byCode       map[int]prometheus.Counter // pre-resolved: no label lookup per request
	messages     prometheus.Counter
	observations prometheus.Counter
	publish      prometheus.Histogram
	inflight     prometheus.Gauge
	// budgetRefused counts requests refused by the process's budgets.
	budgetRefused *prometheus.CounterVec
	authFailures  map[string]prometheus.Counter
	reloads       *prometheus.CounterVec
	brokerUp      prometheus.Gauge
	anonymous     prometheus.Counter
	prom          *promMetrics
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_monitor_requests_total",
			Help: "Requests to the ingest endpoint by status code.",
		}, []string{"code"}),
		messages: f.NewCounter(prometheus.CounterOpts{
			Name: "tmaflow_monitor_messages_accepted_total",
			Help: "TMA messages acknowledged by the broker.",
		}),
		observations: f.NewCounter(prometheus.CounterOpts{
			Name: "tmaflow_monitor_observations_accepted_total",
			Help: "Observations in TMA messages acknowledged by the broker.",
		}),
		publish: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "tmaflow_monitor_publish_duration_seconds",
			Help:    "Time from publishing a request's records to the broker's acknowledgement or failure.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5},
		}),
		inflight: f.NewGauge(prometheus.GaugeOpts{
			Name: "tmaflow_monitor_inflight_requests",
			Help: "Ingest requests being handled.",
		}),
		budgetRefused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_monitor_budget_refused_requests_total",
			Help: "Ingest requests refused because the process is at a memory (429) or disk (503) budget.",
		}, []string{"code"}),
		reloads: f.NewCounterVec(prometheus.CounterOpts{
			Name: "tmaflow_monitor_reloads_total",
			Help: "Reloads of the registry and TLS files by result (success, failure).",
		}, []string{"result"}),
		brokerUp: f.NewGauge(prometheus.GaugeOpts{
			Name: "tmaflow_monitor_broker_up",
			Help: "1 when the last broker ping succeeded.",
		}),
		anonymous: f.NewCounter(prometheus.CounterOpts{
			Name: "tmaflow_monitor_anonymous_requests_total",
			Help: "Requests without credentials taken into -auth.anonymous-tenant.",
		}),
		prom:         newPromMetrics(f),
		byCode:       map[int]prometheus.Counter{},
		authFailures: map[string]prometheus.Counter{},
	}
	for _, code := range []int{
		http.StatusOK, http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden,
		http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType,
		http.StatusTooManyRequests, http.StatusServiceUnavailable,
	} {
		m.byCode[code] = m.requests.WithLabelValues(strconv.Itoa(code))
	}
	authFailures := f.NewCounterVec(prometheus.CounterOpts{
		Name: "tmaflow_monitor_auth_failures_total",
		Help: "Rejected credentials by reason: missing, invalid (unknown probe or wrong secret), forbidden (message of another probe).",
	}, []string{"reason"})
	for _, r := range []string{authMissing, authInvalid, authForbidden} {
		m.authFailures[r] = authFailures.WithLabelValues(r)
	}
	return m
}

func (m *metrics) request(code int) {
	if c, ok := m.byCode[code]; ok {
		c.Inc()
		return
	}
	m.requests.WithLabelValues(strconv.Itoa(code)).Inc()
}
