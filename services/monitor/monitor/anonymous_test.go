package monitor

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// TestMonitorAnonymous: unmodified TMA probes post without credentials
// into the anonymous tenant, for any probeId; credentials still decide
// when given.
func TestMonitorAnonymous(t *testing.T) {
	cfg := testConfig()
	cfg.Auth.AnonymousTenant = "demo"
	pub := &fakePublisher{}
	h := start(t, cfg, Options{Publisher: pub})
	body := fixture(t, "message.json")

	resp := h.do(t, nil, request{body: body})
	require.Equal(t, 200, resp.code, "%s", resp.body)
	require.Equal(t, "demo", pub.published()[0].msgs[0].Metadata["tenant"])
	require.Equal(t, 1.0, testutil.ToFloat64(h.svc.metrics.anonymous))

	resp = h.do(t, nil, request{body: body, user: "1", pass: "probe-one-secret"})
	require.Equal(t, 200, resp.code, "%s", resp.body)
	require.Equal(t, "acme", pub.published()[1].msgs[0].Metadata["tenant"])

	require.Equal(t, 401, h.do(t, nil, request{body: body, user: "1", pass: "wrong"}).code)
	require.Equal(t, 403, h.do(t, nil, request{body: body, user: "2", pass: "probe-two-secret"}).code)
	require.Len(t, pub.published(), 2)
}
