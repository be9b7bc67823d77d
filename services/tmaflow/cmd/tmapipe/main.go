// Command tmapipe is the pipeline benchmark behind `make bench-pipeline`:
// TMA messages through monitor → labeler → persister of a tmaflow process
// (built from this module, embedded broker, auth on), the samples/s its
// TSDB stores at the highest rate whose consumer lag stays bounded, and
// the samples/s Debian's Prometheus stores when the same series are
// remote-written to it. Flags after "--" go to tmaflow.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tmaflow/tmaflow/services/tmaflow/internal/pipebench"
)

func main() {
	fs := flag.NewFlagSet("tmapipe", flag.ContinueOnError)
	var cfg pipebench.Config
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
	if _, err := pipebench.Run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tmapipe:", err)
		stop()
		os.Exit(1)
	}
}
