// Command tmaload is the ingest benchmark behind `make bench-ingest`: it
// posts 20-observation TMA messages to tmaflow (started in-process on an
// embedded broker unless -url is given) at a sweep of concurrency levels,
// and the same load to a no-op Go HTTP handler, the floor. Flags after
// "--" go to the in-process tmaflow.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/tmaflow/tmaflow/services/tmaflow/internal/bench"
)

func main() {
	fs := flag.NewFlagSet("tmaload", flag.ContinueOnError)
	var cfg bench.Config
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
	if _, err := bench.Run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "tmaload:", err)
		stop()
		os.Exit(1)
	}
}
