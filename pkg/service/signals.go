package service

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// SignalActor returns a run-group actor that ends the group on SIGINT or
// SIGTERM and calls reload on SIGHUP. It marks the prober not-ready first so
// traffic drains before servers close.
func SignalActor(logger *slog.Logger, p *Prober, reload func()) (execute func() error, interrupt func(error)) {
	ctx, cancel := context.WithCancel(context.Background())
	return func() error {
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
			defer signal.Stop(sig)
			for {
				select {
				case s := <-sig:
					if s == syscall.SIGHUP {
						if reload != nil {
							logger.Info("reloading on sighup")
							reload()
						}
						continue
					}
					logger.Info("shutting down", "signal", s.String())
					if p != nil {
						p.NotReady("shutting down")
					}
					return nil
				case <-ctx.Done():
					return nil
				}
			}
		}, func(error) {
			cancel()
		}
}
