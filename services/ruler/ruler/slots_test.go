package ruler

import (
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEvalSlots(t *testing.T) {
	for _, tc := range []struct {
		name        string
		concurrency int
		want        int
	}{
		{"set", 3, 3},
		{"default leaves a core to ingest", 0, max(1, runtime.GOMAXPROCS(0)-1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, EvaluationConfig{Concurrency: tc.concurrency}.EvalSlots())
		})
	}
	cfg := DefaultConfig()
	cfg.Evaluation.Concurrency = -1
	require.ErrorContains(t, cfg.Validate(), "evaluation.concurrency")
}

// TestEvaluationWaitsForSlot proves a group is evaluated only while it
// holds one of the evaluation slots.
func TestEvaluationWaitsForSlot(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, mkRules(dir, "acme", "groups:\n- name: g\n  rules:\n  - {alert: Hot, expr: cpu_usage_percent > 90}\n"))
	cfg := testConfig(dir)
	cfg.Evaluation.Concurrency = 1
	now := time.Now()
	ts := newTestService(t, cfg, func() time.Time { return now })
	g := ts.group(t, "acme")

	ts.acquireEvalSlot() // every slot taken
	done := make(chan struct{})
	go func() {
		g.evaluate(triggerData)
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("evaluated without a slot")
	case <-time.After(50 * time.Millisecond):
	}
	require.Zero(t, ts.evaluations("acme", g, triggerData))
	ts.releaseEvalSlot()
	<-done
	require.Equal(t, 1.0, ts.evaluations("acme", g, triggerData))
}
