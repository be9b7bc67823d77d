package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tmaflow/tmaflow/pkg/bus"
)

// alertStateResolved is the state of a resolved alert on topic-alerts.
const alertStateResolved = "resolved"

// topicAlert is the part of a topic-alerts value the bridge reads (the
// ruler's Alert: Alertmanager's alert object plus state and tenant).
type topicAlert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
	Tenant string            `json:"tenant"`
}

// topicTemplate is an MQTT topic with {tenant} and {<label>} placeholders.
type topicTemplate struct {
	// parts alternate literal text and placeholder names: even indexes are
	// literals, odd ones names.
	parts []string
}

func parseTopicTemplate(s string) (topicTemplate, error) {
	var t topicTemplate
	rest := s
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			t.parts = append(t.parts, rest)
			break
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return t, fmt.Errorf("%q: unclosed {", s)
		}
		name := rest[i+1 : i+j]
		if name == "" {
			return t, fmt.Errorf("%q: empty {}", s)
		}
		t.parts = append(t.parts, rest[:i], name)
		rest = rest[i+j+1:]
	}
	if strings.ContainsAny(s, "+#") || strings.HasPrefix(s, "$") || s == "" {
		return t, fmt.Errorf("%q: want a topic without wildcards, not starting with $", s)
	}
	if len(t.parts) < 2 || t.parts[1] != "tenant" {
		// ACLs give a tenant the topics under its rendered prefix.
		return t, fmt.Errorf("%q: the first placeholder must be {tenant}", s)
	}
	return t, nil
}

// render fills the placeholders; a value's /, + and # (and an absent or
// empty one) become _, so a label cannot add levels or wildcards.
func (t topicTemplate) render(tenant string, labels map[string]string) string {
	var b strings.Builder
	for i, p := range t.parts {
		if i%2 == 0 {
			b.WriteString(p)
			continue
		}
		v := labels[p]
		if p == "tenant" {
			v = tenant
		}
		b.WriteString(topicLevel(v))
	}
	return b.String()
}

// prefix is the tenant's part of the template: the text up to the first
// placeholder after {tenant}. A tenant's clients may subscribe under it.
func (t topicTemplate) prefix(tenant string) string {
	return t.parts[0] + topicLevel(tenant) + t.parts[2]
}

func topicLevel(v string) string {
	if v == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '+' || r == '#' {
			return '_'
		}
		return r
	}, v)
}

// alertSender publishes a retained QoS-1 message to the MQTT side;
// an empty payload clears the retained message.
type alertSender func(topic string, payload []byte) error

// alertHandler forwards topic-alerts records to MQTT: a firing alert is
// retained at its topic, a resolved one clears it. An undecodable record is
// a permanent error (dead-lettered by the router).
func alertHandler(t topicTemplate, send alertSender, m *metrics) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		var a topicAlert
		if err := json.Unmarshal(msg.Payload, &a); err != nil {
			return bus.Permanent(fmt.Errorf("decode alert: %w", err))
		}
		if a.Tenant == "" || len(a.Labels) == 0 {
			return bus.Permanent(errors.New("alert without tenant or labels"))
		}
		topic := t.render(a.Tenant, a.Labels)
		payload := msg.Payload
		state := "firing"
		if a.State == alertStateResolved {
			payload, state = nil, alertStateResolved
		}
		if err := send(topic, payload); err != nil {
			return fmt.Errorf("publish alert to %s: %w", topic, err)
		}
		m.alerts.WithLabelValues(state).Inc()
		return nil
	}
}
