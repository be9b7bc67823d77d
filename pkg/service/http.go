package service

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// OpsMux returns a mux with /metrics, /-/healthy and /-/ready registered.
// Services add their own routes to it.
func OpsMux(reg *prometheus.Registry, p *Prober) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("/-/healthy", p.HealthyHandler())
	mux.Handle("/-/ready", p.ReadyHandler())
	return mux
}

// HTTPServer is an HTTP server run as a run-group actor.
type HTTPServer struct {
	Server          *http.Server
	Listener        net.Listener
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
}

// Listen binds addr (optionally with TLS) and returns a server ready to Run.
// Binding early lets callers learn the real address (":0" in tests) and fail
// fast on a busy port.
func Listen(addr string, h http.Handler, tlsCfg *tls.Config, logger *slog.Logger) (*HTTPServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &HTTPServer{
		Server: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			TLSConfig:         tlsCfg,
		},
		Listener:        ln,
		ShutdownTimeout: 30 * time.Second,
		Logger:          logger,
	}, nil
}

// Addr is the bound address.
func (s *HTTPServer) Addr() string { return s.Listener.Addr().String() }

// Run logs the address and serves until Interrupt is called.
func (s *HTTPServer) Run() error {
	s.Logger.Info("http server listening", "addr", s.Addr())
	return s.Serve()
}

// Serve serves until Interrupt is called; services that log their own
// start line call it instead of Run.
func (s *HTTPServer) Serve() error {
	if err := s.Server.Serve(s.Listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http %s: %w", s.Addr(), err)
	}
	return nil
}

// Interrupt shuts the server down gracefully: in-flight requests get
// ShutdownTimeout to finish, then the rest are cut off.
func (s *HTTPServer) Interrupt(error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.ShutdownTimeout)
	defer cancel()
	if err := s.Server.Shutdown(ctx); err != nil {
		s.Logger.Warn("http server shutdown: in-flight requests cut off", "addr", s.Addr(), "err", err)
		if err := s.Server.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.Logger.Warn("http server close", "addr", s.Addr(), "err", err)
		}
	}
}
