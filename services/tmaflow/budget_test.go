package main_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDiskBudget: with the data dir at its cap, ingest answers 503 and
// names the budget; once space is free again it resumes, and every
// message answered 200 is in the TSDB — no acknowledged sample lost, no
// log corrupted by a full disk.
func TestDiskBudget(t *testing.T) {
	dir := t.TempDir()
	tf := startTmaflow(t, "-data-dir="+dir, "-budget.disk-mib=256", "-budget.check-interval=20ms")
	base := time.Now().Add(-10 * time.Minute).Unix()
	msg := func(i int) []byte {
		return fmt.Appendf(nil, `{"probeId":0,"resourceId":101098,"messageId":%d,"sentTime":%d,"data":[{"descriptionId":0,"type":"measurement","observations":[{"time":%d,"value":%d}]}]}`,
			i, base+int64(i), base+int64(i), i)
	}
	acked, n := 0, 0
	send := func() answer {
		n++
		got := post(t, tf.url, msg(n), demoProbe, demoSecret)
		if got.code == http.StatusOK {
			acked++
		}
		return got
	}
	for range 20 {
		require.Equal(t, http.StatusOK, send().code)
	}

	// Something else fills the data dir past its cap.
	ballast := filepath.Join(dir, "ballast")
	require.NoError(t, os.WriteFile(ballast, make([]byte, 256<<20), 0o644))
	var refused answer
	require.Eventually(t, func() bool {
		refused = send()
		return refused.code == http.StatusServiceUnavailable
	}, 10*time.Second, 20*time.Millisecond, "ingest refused at the cap")
	require.Contains(t, refused.body, "disk budget")
	require.Contains(t, refused.body, "-budget.disk-mib")

	// Space freed: ingest resumes.
	require.NoError(t, os.Remove(ballast))
	require.Eventually(t, func() bool { return send().code == http.StatusOK }, 10*time.Second, 20*time.Millisecond)
	for range 10 {
		require.Equal(t, http.StatusOK, send().code)
	}

	// Every acknowledged observation is stored once.
	want := strconv.Itoa(acked)
	require.Eventually(t, func() bool {
		code, res := query(t, tf.api, `count_over_time(cpu_usage_percent[1h])`, time.Now().Unix(), demoProbe, demoSecret)
		return code == http.StatusOK && len(res.Data.Result) == 1 && res.Data.Result[0].Value[1] == want
	}, 20*time.Second, 50*time.Millisecond, "want %s samples stored", want)
}
