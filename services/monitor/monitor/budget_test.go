package monitor

import (
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/budget"
)

// TestBudgetRefusal: while the process's budget refuses ingest, every
// request is answered with its status and reason and nothing is
// published; once it admits again, ingest resumes.
func TestBudgetRefusal(t *testing.T) {
	var refusal atomic.Pointer[error]
	admit := func() error {
		if e := refusal.Load(); e != nil {
			return *e
		}
		return nil
	}
	pub := &fakePublisher{}
	cfg := testConfig()
	h := start(t, cfg, Options{Publisher: pub, Admit: admit})
	body := fixture(t, "message.json")

	for _, tc := range []struct {
		name     string
		err      error
		wantCode int
		wantBody string
	}{
		{"memory", &budget.Refusal{Status: http.StatusTooManyRequests, Reason: "memory budget: live heap 950 MiB"}, http.StatusTooManyRequests, `"errorType":"overloaded","error":"memory budget: live heap 950 MiB"`},
		{"disk", &budget.Refusal{Status: http.StatusServiceUnavailable, Reason: "disk budget: the data dir holds 1000 MiB"}, http.StatusServiceUnavailable, `"errorType":"unavailable","error":"disk budget: the data dir holds 1000 MiB"`},
		{"any other error", errors.New("budget unknown"), http.StatusServiceUnavailable, `"error":"budget unknown"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			refusal.Store(&tc.err)
			got := h.do(t, nil, request{body: body, user: "1", pass: "probe-one-secret"})
			require.Equal(t, tc.wantCode, got.code)
			require.Contains(t, string(got.body), tc.wantBody)
			require.NotEmpty(t, got.header.Get("Retry-After"))
			require.Empty(t, pub.published(), "nothing published while refused")
		})
	}
	require.Equal(t, 1.0, testutil.ToFloat64(h.svc.metrics.budgetRefused.WithLabelValues("429")))
	require.Equal(t, 2.0, testutil.ToFloat64(h.svc.metrics.budgetRefused.WithLabelValues("503")))

	refusal.Store(nil)
	got := h.do(t, nil, request{body: body, user: "1", pass: "probe-one-secret"})
	require.Equal(t, http.StatusOK, got.code, string(got.body))
	require.NotEmpty(t, pub.published())
}
