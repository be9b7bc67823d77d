package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/module"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Main runs the tmaflow command line and returns the exit code: 0, 1 for a
// failure, 2 for bad usage.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if cmd := command(args[0]); cmd != nil {
			name := "tmaflow " + args[0]
			switch err := cmd(name, args[1:], stdin, stdout, stderr); {
			case err == nil, errors.Is(err, flag.ErrHelp):
				return 0
			default:
				_, _ = fmt.Fprintln(stderr, name+":", err)
				return 2
			}
		}
	}

	fs := flag.NewFlagSet("tmaflow", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	cfg.RegisterFlags(fs)
	fs.Usage = func() {
		_, _ = fmt.Fprint(stderr, "Usage: tmaflow [flags]\n       tmaflow hash-secret [--algo argon2id|bcrypt] < secret\n\n"+
			"Runs the services of -target ("+strings.Join(cfg.names(), ", ")+"; all by default) in one process, on the\n"+
			"embedded broker unless -kafka.brokers names a Kafka, over one -registry file. A service's flags carry its\n"+
			"name as prefix (-monitor.listen-address); its own binary takes them without.\n"+
			"Every flag can also be set as TMAFLOW_<FLAG> (kafka.brokers → TMAFLOW_KAFKA_BROKERS).\n\n")
		fs.PrintDefaults()
	}
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
	a, err := New(cfg, Options{Logger: logger, Registry: prometheus.NewRegistry(), Signals: true, TuneGC: true})
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

// command is the subcommand of that name of any module in the table, nil
// if none has it.
func command(name string) module.Command {
	for _, m := range Modules() {
		if c, ok := m.Commands[name]; ok {
			return c
		}
	}
	return nil
}
