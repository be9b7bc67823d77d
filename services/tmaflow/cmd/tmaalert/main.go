// Command tmaalert is the alert-latency benchmark behind `make
// bench-alert`: the time from POST /monitor of a value crossing a
// threshold to the alert at an Alertmanager webhook (and on
// topic-alerts) for tmaflow, and from the remote write of the same value
// for Debian's Prometheus at evaluation_interval 1s and 100ms, with the
// same 1,000 rules, Alertmanager and background load, and the CPU each
// spent. Flags after "--" go to tmaflow.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tmaflow/tmaflow/services/tmaflow/internal/alertbench"
)

func main() {
	fs := flag.NewFlagSet("tmaalert", flag.ContinueOnError)
	var cfg alertbench.Config
	cfg.RegisterFlags(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	cfg.TmaflowArgs = fs.Args()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := alertbench.Run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tmaalert:", err)
		stop()
		os.Exit(1)
	}
}
