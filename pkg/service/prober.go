// Package service holds the skeleton every tmaflow service shares: probes,
// the operational HTTP endpoints, logging, flags from the environment and
// signal handling, in the style of Thanos' pkg/prober.
package service

import (
	"net/http"
	"sync/atomic"
)

// Prober tracks liveness and readiness separately: a service is healthy as
// soon as it runs, and ready only once it can do its job (caught up,
// broker reachable). On shutdown it turns not-ready first so load balancers
// stop sending traffic before the listeners close.
type Prober struct {
	healthy atomic.Bool
	ready   atomic.Bool
	reason  atomic.Value // string: why not ready
}

// NewProber returns a prober that is neither healthy nor ready.
func NewProber() *Prober {
	p := &Prober{}
	p.reason.Store("starting")
	return p
}

// Healthy marks the process alive.
func (p *Prober) Healthy() { p.healthy.Store(true) }

// Ready marks the service able to serve.
func (p *Prober) Ready() { p.ready.Store(true); p.reason.Store("") }

// NotReady marks the service unable to serve, with the reason shown on /-/ready.
func (p *Prober) NotReady(reason string) { p.ready.Store(false); p.reason.Store(reason) }

// IsReady reports readiness.
func (p *Prober) IsReady() bool { return p.ready.Load() }

// IsHealthy reports liveness.
func (p *Prober) IsHealthy() bool { return p.healthy.Load() }

// HealthyHandler serves /-/healthy.
func (p *Prober) HealthyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !p.healthy.Load() {
			http.Error(w, "not healthy", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("OK\n"))
	})
}

// ReadyHandler serves /-/ready.
func (p *Prober) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !p.ready.Load() {
			reason, _ := p.reason.Load().(string)
			http.Error(w, "not ready: "+reason, http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("OK\n"))
	})
}
