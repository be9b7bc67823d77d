package benchkit

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Main is the whole main of a benchmark command: it registers cfg's flags
// with register and parses them, sets *tmaflowArgs to the arguments after
// "--" (flags for tmaflow), and runs the benchmark with cfg, its report on
// stdout, until it ends or Ctrl-C/SIGTERM; it exits 1 on an error, 2 on
// bad flags. A command's main is then one call:
//
//	var cfg pipebench.Config
//	benchkit.Main("tmapipe", &cfg, cfg.RegisterFlags, &cfg.TmaflowArgs, pipebench.Run)
func Main[C, R any](name string, cfg *C, register func(*flag.FlagSet), tmaflowArgs *[]string, run func(context.Context, C, io.Writer) (R, error)) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	register(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		os.Exit(2)
	}
	*tmaflowArgs = fs.Args()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	_, err := run(ctx, *cfg, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}
