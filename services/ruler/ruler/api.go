package ruler

import (
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/rules"
)

// TenantHeader selects one tenant's rules and alerts on the API (as
// Mimir's ruler API); without it every tenant's are listed.
const TenantHeader = "X-Scope-OrgID"

func (s *Service) registerAPI(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/rules", s.apiRules)
	mux.HandleFunc("GET /api/v1/alerts", s.apiAlerts)
}

// The shapes of Prometheus' /api/v1/rules and /api/v1/alerts.
type apiAlert struct {
	Labels          map[string]string `json:"labels"`
	Annotations     map[string]string `json:"annotations"`
	State           string            `json:"state"`
	ActiveAt        *time.Time        `json:"activeAt,omitempty"`
	KeepFiringSince *time.Time        `json:"keepFiringSince,omitempty"`
	Value           string            `json:"value"`
}

type apiRule struct {
	State          string            `json:"state,omitempty"`
	Name           string            `json:"name"`
	Query          string            `json:"query"`
	Duration       float64           `json:"duration,omitempty"`
	KeepFiringFor  float64           `json:"keepFiringFor,omitempty"`
	Labels         map[string]string `json:"labels"`
	Annotations    map[string]string `json:"annotations,omitempty"`
	Alerts         []apiAlert        `json:"alerts,omitempty"`
	Health         string            `json:"health"`
	LastError      string            `json:"lastError,omitempty"`
	EvaluationTime float64           `json:"evaluationTime"`
	LastEvaluation time.Time         `json:"lastEvaluation"`
	Type           string            `json:"type"`
}

type apiGroup struct {
	Name           string    `json:"name"`
	File           string    `json:"file"`
	Tenant         string    `json:"tenant"`
	Rules          []apiRule `json:"rules"`
	Interval       float64   `json:"interval"`
	EvaluationTime float64   `json:"evaluationTime"`
	LastEvaluation time.Time `json:"lastEvaluation"`
}

func toAPIAlert(a *rules.Alert) apiAlert {
	out := apiAlert{
		Labels:      labelMap(a.Labels),
		Annotations: labelMap(a.Annotations),
		State:       a.State.String(),
		Value:       strconv.FormatFloat(a.Value, 'e', -1, 64),
	}
	if math.IsNaN(a.Value) {
		out.Value = "NaN"
	}
	if !a.ActiveAt.IsZero() {
		t := a.ActiveAt
		out.ActiveAt = &t
	}
	if !a.KeepFiringSince.IsZero() {
		t := a.KeepFiringSince
		out.KeepFiringSince = &t
	}
	return out
}

func (s *Service) groupsFor(r *http.Request) []*groupRunner {
	tenant := r.Header.Get(TenantHeader)
	var out []*groupRunner
	for _, g := range s.rules.Load().groups {
		if tenant == "" || g.tenant == tenant {
			out = append(out, g)
		}
	}
	return out
}

func (s *Service) apiRules(w http.ResponseWriter, r *http.Request) {
	groups := []apiGroup{}
	for _, g := range s.groupsFor(r) {
		ag := apiGroup{
			Name: g.name, File: g.file, Tenant: g.tenant, Rules: []apiRule{},
			Interval:       g.interval.Seconds(),
			EvaluationTime: g.group.GetEvaluationTime().Seconds(),
			LastEvaluation: g.group.GetLastEvaluation(),
		}
		for _, rule := range g.group.Rules() {
			ar := apiRule{
				Name: rule.Name(), Query: rule.Query().String(), Labels: labelMap(rule.Labels()),
				Health: string(rule.Health()), EvaluationTime: rule.GetEvaluationDuration().Seconds(),
				LastEvaluation: rule.GetEvaluationTimestamp(), Type: "recording",
			}
			if err := rule.LastError(); err != nil {
				ar.LastError = err.Error()
			}
			if alert, ok := rule.(*rules.AlertingRule); ok {
				ar.Type = "alerting"
				ar.State = alert.State().String()
				ar.Duration = alert.HoldDuration().Seconds()
				ar.KeepFiringFor = alert.KeepFiringFor().Seconds()
				ar.Annotations = labelMap(alert.Annotations())
				ar.Alerts = []apiAlert{}
				for _, a := range alert.ActiveAlerts() {
					ar.Alerts = append(ar.Alerts, toAPIAlert(a))
				}
			}
			ag.Rules = append(ag.Rules, ar)
		}
		groups = append(groups, ag)
	}
	writeJSON(w, map[string]any{"groups": groups})
}

func (s *Service) apiAlerts(w http.ResponseWriter, r *http.Request) {
	alerts := []apiAlert{}
	for _, g := range s.groupsFor(r) {
		for _, ar := range g.group.AlertingRules() {
			for _, a := range ar.ActiveAlerts() {
				alerts = append(alerts, toAPIAlert(a))
			}
		}
	}
	writeJSON(w, map[string]any{"alerts": alerts})
}

func writeJSON(w http.ResponseWriter, data any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
}
