package ruler

import (
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/util/strutil"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
)

// Alert states on topic-alerts (schemas/alert.avsc).
const (
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Alert is an alert as Alertmanager's API v2 takes it (postableAlert) and,
// with State, Tenant and Fingerprint, the value of topic-alerts
// (schemas/alert.avsc).
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	State        string            `json:"state,omitempty"`
	Tenant       string            `json:"tenant,omitempty"`
	Fingerprint  string            `json:"fingerprint,omitempty"`
}

// postable is the Alertmanager subset of an Alert.
type postable struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

func (a *Alert) postable() postable {
	return postable{Labels: a.Labels, Annotations: a.Annotations, StartsAt: a.StartsAt, EndsAt: a.EndsAt, GeneratorURL: a.GeneratorURL}
}

// Fingerprint is Alertmanager's fingerprint of a label set, 16 hex digits.
func Fingerprint(lbls map[string]string) string {
	ls := make(model.LabelSet, len(lbls))
	for k, v := range lbls {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls.Fingerprint().String()
}

// AlertKey is the record key of an alert on topic-alerts: tenant, a 0
// byte, fingerprint.
func AlertKey(tenant, fingerprint string) []byte {
	return []byte(tenant + "\x00" + fingerprint)
}

func labelMap(l labels.Labels) map[string]string {
	m := make(map[string]string, l.Len())
	l.Range(func(lb labels.Label) { m[lb.Name] = lb.Value })
	return m
}

// alertFrom converts an alert of the rules package as Prometheus'
// rules.SendAlerts does: it starts when it fired and ends when resolved,
// or else at its ValidUntil, so Alertmanager resolves it by itself if the
// ruler goes away.
func alertFrom(tenant, generatorURL string, a *rules.Alert) *Alert {
	out := &Alert{
		Labels:       labelMap(a.Labels),
		Annotations:  labelMap(a.Annotations),
		StartsAt:     a.FiredAt,
		GeneratorURL: generatorURL,
		State:        StateFiring,
		Tenant:       tenant,
	}
	if !a.ResolvedAt.IsZero() {
		out.EndsAt = a.ResolvedAt
		out.State = StateResolved
	} else {
		out.EndsAt = a.ValidUntil
	}
	out.Fingerprint = Fingerprint(out.Labels)
	return out
}

// alertSink delivers what evaluations want sent: every alert to the
// Alertmanagers (firing ones again every resend delay, as Prometheus
// does) and each change of state to topic-alerts.
type alertSink struct {
	s           *Service
	am          []*amQueue
	externalURL string

	mu sync.Mutex
	// firing holds the alerts last published as firing, by tenant and
	// fingerprint (restored from topic-alerts at start).
	firing map[string]*Alert
}

func (k *alertSink) notify(tenant, expr string, alerts []*rules.Alert) {
	gen := ""
	if k.externalURL != "" {
		gen = k.externalURL + strutil.TableLinkForExpression(expr)
	}
	out := make([]*Alert, 0, len(alerts))
	for _, a := range alerts {
		out = append(out, alertFrom(tenant, gen, a))
	}
	k.deliver(out)
}

// deliver sends alerts to every Alertmanager first (the latency-critical
// path), then publishes the state changes.
func (k *alertSink) deliver(alerts []*Alert) {
	for _, q := range k.am {
		q.push(alerts)
	}
	for _, a := range alerts {
		if k.changed(a) {
			k.publish(a)
		}
	}
}

// changed records a's state and reports whether it differs from the one
// last published.
func (k *alertSink) changed(a *Alert) bool {
	key := string(AlertKey(a.Tenant, a.Fingerprint))
	k.mu.Lock()
	defer k.mu.Unlock()
	_, wasFiring := k.firing[key]
	switch a.State {
	case StateFiring:
		k.firing[key] = a
		return !wasFiring
	default:
		delete(k.firing, key)
		return wasFiring
	}
}

func (k *alertSink) publish(a *Alert) {
	payload, err := json.Marshal(a)
	if err != nil { // cannot happen for maps of strings and times
		k.s.logger.Error("encode alert", "err", err)
		return
	}
	msg := message.NewMessage("", payload) // no UUID header: the contract's headers only
	msg.Metadata.Set(contract.HeaderTenant, a.Tenant)
	bus.SetKey(msg, AlertKey(a.Tenant, a.Fingerprint))
	k.s.out.send(contract.TopicAlerts, msg)
}

// restore takes an alert record replayed from topic-alerts: the last
// record of a fingerprint says whether it was firing.
func (k *alertSink) restore(payload []byte) error {
	var a Alert
	if err := json.Unmarshal(payload, &a); err != nil {
		return fmt.Errorf("decode alert: %w", err)
	}
	if a.Tenant == "" || len(a.Labels) == 0 {
		return fmt.Errorf("alert without tenant or labels")
	}
	if a.Fingerprint == "" {
		a.Fingerprint = Fingerprint(a.Labels)
	}
	k.changed(&a)
	return nil
}

// restoredFiring returns the alerts published as firing last, by key.
func (k *alertSink) restoredFiring() map[string]*Alert {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]*Alert, len(k.firing))
	for key, a := range k.firing {
		out[key] = a
	}
	return out
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
