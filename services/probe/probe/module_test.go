package probe

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/pkg/service"
)

func TestModule(t *testing.T) {
	m := Module()
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	m.RegisterFlags(fs)
	for f := range m.DataDirFlags {
		require.NotNil(t, fs.Lookup(f), "data-dir flag %s is registered", f)
	}
	require.Nil(t, m.ConsumerGroups, "the probe consumes nothing")
	require.Contains(t, m.Commands, "sign")

	cfg := filepath.Join(t.TempDir(), "probe.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(`collectors: [{name: h, type: host, interval: 1s}]
outputs: [{name: o, type: remote_write, remote_write: {url: "http://127.0.0.1:1/api/v1/write"}}]
`), 0o644))
	require.NoError(t, service.Parse(fs, []string{"-config.file=" + cfg, "-queue.dir=" + t.TempDir(), "-listen-address=127.0.0.1:0"}))
	require.NoError(t, m.Validate())
	svc, err := m.New(module.Deps{Registry: prometheus.NewRegistry(), Prober: service.NewProber()})
	require.NoError(t, err)
	require.NotEmpty(t, svc.Addr())

	require.NoError(t, service.Parse(fs, []string{"-config.file=" + cfg + ".missing"}))
	_, err = m.New(module.Deps{Registry: prometheus.NewRegistry(), Prober: service.NewProber()})
	require.ErrorContains(t, err, "read config")
}
