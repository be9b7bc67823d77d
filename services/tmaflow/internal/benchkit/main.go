package benchkit

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Main is the whole main of a benchmark command: it registers and parses
// the flags, runs the benchmark with the arguments after "--" (flags for
// tmaflow) until it ends or Ctrl-C/SIGTERM, and exits 1 on an error, 2 on
// bad flags.
func Main(name string, register func(*flag.FlagSet), run func(ctx context.Context, tmaflowArgs []string) error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	register(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, fs.Args())
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}
