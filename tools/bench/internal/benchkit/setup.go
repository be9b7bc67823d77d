package benchkit

import (
	"context"
	"flag"
	"fmt"
	"io"
)

// Setup is what every tmaflow-versus-Prometheus benchmark needs: the
// tmaflow to run, the peers' binaries, and the probe posting as whom.
type Setup struct {
	// TmaflowSource is the tmaflow module built into a temporary dir;
	// TmaflowBinary, when set, is used instead.
	TmaflowSource, TmaflowBinary string
	GoBinary                     string
	Prometheus                   string
	Registry                     string
	User, Password               string
	ProbeID                      int64
}

// RegisterFlags registers the setup's flags; prometheusHelp says what
// Prometheus is used for.
func (s *Setup) RegisterFlags(fs *flag.FlagSet, prometheusHelp string) {
	fs.StringVar(&s.TmaflowSource, "tmaflow.src", "../../services/tmaflow", "Directory of the tmaflow module (the product, services/tmaflow), built with go build into a temporary dir.")
	fs.StringVar(&s.TmaflowBinary, "tmaflow.bin", "", "Use this tmaflow binary instead of building one.")
	fs.StringVar(&s.GoBinary, "go", "go", "Go command (go build, go tool pprof).")
	fs.StringVar(&s.Prometheus, "prometheus", "/usr/bin/prometheus", prometheusHelp+" (empty: skip).")
	fs.StringVar(&s.Registry, "registry", "../../examples/registry.yaml", "Registry file of tmaflow (probes, resources, descriptions).")
	fs.StringVar(&s.User, "user", "probe-python-demo", "Probe name (HTTP Basic user) posting the messages.")
	fs.StringVar(&s.Password, "password", "demo-secret", "Probe secret.")
	fs.Int64Var(&s.ProbeID, "probe-id", 0, "Probe id in the messages.")
}

// Tmaflow returns the tmaflow binary: TmaflowBinary, or one built from
// TmaflowSource into dir.
func (s *Setup) Tmaflow(ctx context.Context, dir string, out io.Writer) (string, error) {
	if s.TmaflowBinary != "" {
		return s.TmaflowBinary, nil
	}
	_, _ = fmt.Fprintf(out, "building tmaflow from %s\n", s.TmaflowSource)
	return BuildTmaflow(ctx, s.GoBinary, s.TmaflowSource, dir)
}
