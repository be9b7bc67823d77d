package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/peertest"
)

// kcatRecord is kcat's -J envelope.
type kcatRecord struct {
	Topic     string   `json:"topic"`
	Partition int      `json:"partition"`
	Offset    int64    `json:"offset"`
	Headers   []string `json:"headers"` // name, value, name, value …
	Payload   string   `json:"payload"`
}

// TestKcatConsumes has the real Debian kcat (librdkafka) read what the
// monitor produced, as the README tells users to.
func TestKcatConsumes(t *testing.T) {
	kcat := peertest.Binary(t, "kcat")
	tf := startTmaflow(t)
	var want [][]byte
	for _, f := range []string{"message-20-items.json", "array.json"} {
		body := fixture(t, f)
		require.Equal(t, 200, post(t, tf.url, body, demoProbe, demoSecret).code)
		want = append(want, messages(t, body)...)
	}

	// -e: exit at the end of every partition. The JSON envelope carries
	// headers and payload; keys come from a second read that decodes them
	// as big-endian int64s (-s key='>q'), as TMA's data-loader does.
	out := runKcat(t, kcat, "-b", tf.kafka, "-t", contract.TopicMonitor, "-C", "-e", "-q", "-J")
	keyLines := runKcat(t, kcat, "-b", tf.kafka, "-t", contract.TopicMonitor, "-C", "-e", "-q",
		"-s", "key=>q", "-f", "%p/%o %k\n")
	keys := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(string(keyLines)), "\n") {
		pos, key, ok := strings.Cut(line, " ")
		require.True(t, ok, line)
		id, err := strconv.ParseInt(key, 10, 64)
		require.NoError(t, err, line)
		keys[pos] = id
	}

	got := map[string]kcatRecord{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r kcatRecord
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		got[r.Payload] = r
	}
	require.NoError(t, sc.Err())
	require.Len(t, got, len(want), "kcat output:\n%s", out)
	require.Len(t, keys, len(want), "kcat keys:\n%s", keyLines)
	for _, msg := range want {
		r, ok := got[string(msg)]
		require.True(t, ok, "kcat did not see %.80s", msg)
		require.Equal(t, contract.TopicMonitor, r.Topic)
		require.Equal(t, resourceID(t, msg), keys[fmt.Sprintf("%d/%d", r.Partition, r.Offset)])
		h := map[string]string{}
		for i := 0; i+1 < len(r.Headers); i += 2 {
			h[r.Headers[i]] = r.Headers[i+1]
		}
		require.Equal(t, demoTenant, h[contract.HeaderTenant])
		require.Equal(t, contract.SourceHTTP, h[contract.HeaderSource])
		require.Equal(t, contract.ContentTypeTMA, h[contract.HeaderContentType])
		require.NotEmpty(t, h[contract.HeaderReceivedAt])
	}
}

func runKcat(t *testing.T, kcat string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "kcat %v: %s", args, stderr.String())
	return out
}
