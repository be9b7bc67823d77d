package reporter

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
)

// fakeReader delivers records, says caught up, then follows until ctx
// ends, as a bus.Reader does.
type fakeReader struct{ recs []bus.Record }

func (r fakeReader) Consume(ctx context.Context, topic string, _ time.Time, handle func(bus.Record), caughtUp func()) error {
	for _, rec := range r.recs {
		if rec.Topic == topic {
			handle(rec)
		}
	}
	caughtUp()
	<-ctx.Done()
	return nil
}

func alertRec(t *testing.T, tenant, fp, state string, lbls map[string]string, startsAt, endsAt, at time.Time) bus.Record {
	t.Helper()
	v, err := json.Marshal(map[string]any{"labels": lbls, "startsAt": startsAt, "endsAt": endsAt, "state": state, "tenant": tenant, "fingerprint": fp})
	require.NoError(t, err)
	return bus.Record{Topic: contract.TopicAlerts, Value: v, Headers: map[string]string{contract.HeaderTenant: tenant}, Time: at}
}

func TestTopicAlertHistory(t *testing.T) {
	h := func(m int) time.Time { return day.Add(time.Duration(m) * time.Minute) }
	crit := map[string]string{"alertname": "Down", "severity": "critical"}
	warn := map[string]string{"alertname": "Slow", "severity": "warning"}
	late := map[string]string{"alertname": "Late", "severity": "critical"}
	far := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) // endsAt of a firing alert: ahead
	recs := []bus.Record{
		alertRec(t, "demo", "f2", "firing", warn, day.Add(-time.Hour), far, day.Add(-time.Hour)),
		alertRec(t, "demo", "f1", "firing", crit, h(600), far, h(600)),
		alertRec(t, "demo", "f1", "firing", crit, h(600), far, h(610)), // a resend changes nothing
		alertRec(t, "demo", "f1", "resolved", crit, h(600), h(630), h(630)),
		alertRec(t, "acme", "f3", "firing", crit, h(700), far, h(700)),
		{Topic: contract.TopicAlerts, Value: []byte("{not json"), Headers: map[string]string{contract.HeaderTenant: "demo"}, Time: h(701)},
		alertRec(t, "demo", "f1", "firing", crit, h(720), far, h(720)),
		alertRec(t, "demo", "f1", "resolved", crit, h(720), h(730), h(731)),
		alertRec(t, "demo", "f4", "firing", late, h(1380), far, h(1380)),
		alertRec(t, "demo", "f4", "resolved", late, h(1380), h(1500), h(1500)),
	}
	tests := []struct {
		name     string
		selector []*labels.Matcher
		want     []AlertSpan
	}{
		{name: "all", want: []AlertSpan{
			{Labels: warn, Start: day, End: h(1440), Duration: 86400},
			{Labels: crit, Start: h(600), End: h(630), Duration: 1800},
			{Labels: crit, Start: h(720), End: h(730), Duration: 600},
			{Labels: late, Start: h(1380), End: h(1440), Duration: 3600},
		}},
		{name: "critical", selector: []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "severity", "critical")}, want: []AlertSpan{
			{Labels: crit, Start: h(600), End: h(630), Duration: 1800},
			{Labels: crit, Start: h(720), End: h(730), Duration: 600},
			{Labels: late, Start: h(1380), End: h(1440), Duration: 3600},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spans, skipped, err := TopicAlertHistory(fakeReader{recs: recs})(context.Background(), "demo", tc.selector, day, h(1440))
			require.NoError(t, err)
			require.Equal(t, 1, skipped)
			require.Equal(t, tc.want, spans)
		})
	}
}
