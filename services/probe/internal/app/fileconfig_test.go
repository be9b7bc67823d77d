package app

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSampleConfig: deploy/probe/probe.yaml is valid as shipped.
func TestSampleConfig(t *testing.T) {
	c, err := ReadFileConfig(filepath.Join("..", "..", "..", "..", "deploy", "probe", "probe.yaml"))
	require.NoError(t, err)
	require.Equal(t, "host", c.Collectors[0].Type)
	require.True(t, *c.Outputs[0].LiveFirst)
}

func TestParseFileConfig(t *testing.T) {
	const outputs = "outputs: [{name: o, type: remote_write, remote_write: {url: 'http://x/api/v1/write'}}]\n"
	const collectors = "collectors: [{name: h, type: host, interval: 1s}]\n"
	for _, tc := range []struct {
		name, yaml, wantErr string
	}{
		{name: "minimal", yaml: collectors + outputs},
		{name: "unknown field", yaml: collectors + outputs + "colectors: []\n", wantErr: "field colectors not found"},
		{name: "interval below 100ms", yaml: "collectors: [{name: h, type: host, interval: 50ms}]\n" + outputs, wantErr: "interval 50ms: at least 100ms"},
		{name: "unknown part", yaml: "collectors: [{name: h, type: host, parts: [gpu]}]\n" + outputs, wantErr: `parts: "gpu"`},
		{name: "no outputs", yaml: collectors, wantErr: "outputs: at least one is required"},
		{name: "duplicate output", yaml: collectors + "outputs: [{name: o, type: remote_write, remote_write: {url: 'http://x'}}, {name: o, type: remote_write, remote_write: {url: 'http://y'}}]\n", wantErr: `name "o" used twice`},
		{name: "type without section", yaml: collectors + "outputs: [{name: o, type: mqtt}]\n", wantErr: `type "mqtt"`},
		{name: "tma without mappings", yaml: collectors + "outputs: [{name: o, type: tma, tma: {url: 'http://x/monitor'}}]\n", wantErr: "mappings"},
		{name: "bad policy", yaml: collectors + outputs + "queue: {policy: keep-all}\n", wantErr: `queue.policy "keep-all"`},
		{name: "bad label", yaml: collectors + outputs + "labels: {__x: y}\n", wantErr: `"__x" is not a label name`},
		{name: "bad public key", yaml: collectors + outputs + "remote_config: {url: 'http://x/probe/config', public_key: abc}\n", wantErr: "public_key"},
		{name: "exec needs a command", yaml: "collectors: [{name: e, type: exec}]\n" + outputs, wantErr: "command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFileConfig([]byte(tc.yaml))
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.wantErr)
		})
	}
}
