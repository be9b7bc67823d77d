package app

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/registry"
	"github.com/tmaflow/tmaflow/pkg/service"
	"github.com/tmaflow/tmaflow/services/ruler/ruler"
)

// Main runs the tmaflow command line and returns the exit code: 0, 1 for a
// failure, 2 for bad usage.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "hash-secret" {
		err := registry.HashSecretCommand("tmaflow hash-secret", args[1:], stdin, stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		default:
			_, _ = fmt.Fprintln(stderr, "tmaflow hash-secret:", err)
			return 2
		}
	}

	fs := flag.NewFlagSet("tmaflow", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = fmt.Fprint(stderr, "Usage: tmaflow [flags]\n       tmaflow hash-secret [--algo argon2id|bcrypt] < secret\n\n"+
			"Runs monitor (POST /monitor on -monitor.listen-address), labeler and persister (Prometheus query API on\n"+
			"-persister.listen-address, HTTP Basic credentials of a registry probe required) over one -registry file.\n"+
			"Every flag can also be set as TMAFLOW_<FLAG> (kafka.brokers → TMAFLOW_KAFKA_BROKERS).\n\n")
		fs.PrintDefaults()
	}
	var cfg Config
	cfg.RegisterFlags(fs)
	if err := service.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		_, _ = fmt.Fprintln(stderr, "tmaflow:", err)
		return 2
	}
	if fs.NArg() > 0 {
		_, _ = fmt.Fprintf(stderr, "tmaflow: unexpected arguments %q\n", fs.Args())
		return 2
	}
	logger, err := cfg.Log.NewLogger(stderr)
	if err != nil {
		_, _ = fmt.Fprintln(stderr, "tmaflow:", err)
		return 2
	}
	cfg.Runtime.Apply(logger)
	ruler.NoLibraryTracing()
	a, err := New(cfg, Options{Logger: logger, Registry: prometheus.NewRegistry(), Signals: true})
	if err != nil {
		logger.Error("tmaflow could not start", "err", err)
		return 1
	}
	if err := a.Run(); err != nil {
		logger.Error("tmaflow stopped with an error", "err", err)
		return 1
	}
	logger.Info("tmaflow stopped")
	return 0
}
