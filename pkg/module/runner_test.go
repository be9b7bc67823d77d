package module

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// events records what the fakes did, in order.
type events struct {
	mu  sync.Mutex
	got []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, s)
}

func (e *events) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.got...)
}

// fakeBackend hands out in-process subscribers that record their close.
type fakeBackend struct {
	ev     *events
	pubsub *gochannel.GoChannel
}

func newFakeBackend(ev *events) *fakeBackend {
	return &fakeBackend{ev: ev, pubsub: gochannel.NewGoChannel(gochannel.Config{}, watermill.NopLogger{})}
}

func (b *fakeBackend) Publisher() message.Publisher { return b.pubsub }
func (b *fakeBackend) Ping(context.Context) error   { return nil }
func (b *fakeBackend) Reader(*slog.Logger) (bus.Reader, error) {
	return nil, errors.New("no reader")
}

func (b *fakeBackend) Subscriber(group string, _ *slog.Logger, reg prometheus.Registerer) (bus.Subscriber, error) {
	// Registers like the Kafka subscriber does: twice on one registry
	// only with different labels.
	promauto.With(reg).NewCounter(prometheus.CounterOpts{Name: "fake_subscriber_created_total"}).Inc()
	return &fakeSubscriber{Subscriber: b.pubsub, group: group, ev: b.ev}, nil
}

type fakeSubscriber struct {
	message.Subscriber
	group string
	ev    *events
}

func (s *fakeSubscriber) LagOf(...string) func(context.Context) (int64, error) {
	return func(context.Context) (int64, error) { return 0, nil }
}

func (s *fakeSubscriber) Close() error {
	s.ev.add("close subscriber " + s.group)
	return nil
}

// fakeService is a service that is ready once it runs.
type fakeService struct {
	name      string
	ev        *events
	prober    *service.Prober
	reloadErr error
	stop      chan struct{}
	once      sync.Once
}

func (s *fakeService) Execute() error {
	s.prober.Healthy()
	s.prober.Ready()
	<-s.stop
	return nil
}

func (s *fakeService) Interrupt(error) { s.once.Do(func() { close(s.stop) }) }
func (s *fakeService) Reload() error {
	s.ev.add("reload " + s.name)
	return s.reloadErr
}
func (s *fakeService) Addr() string { return s.name + ":1" }
func (s *fakeService) Close() error {
	s.ev.add("close " + s.name)
	return nil
}

// fakeModule describes a fakeService with a subscriber in group name.
func fakeModule(name string, ev *events, newErr, reloadErr error) (*Module, *Deps) {
	deps := &Deps{}
	return &Module{
		Name: name,
		New: func(d Deps) (Service, error) {
			*deps = d
			if _, err := d.Bus.Subscriber(name, "c"); err != nil {
				return nil, err
			}
			if newErr != nil {
				return nil, newErr
			}
			ev.add("new " + name)
			return &fakeService{name: name, ev: ev, prober: d.Prober, reloadErr: reloadErr, stop: make(chan struct{})}, nil
		},
	}, deps
}

func TestRunnerLifecycle(t *testing.T) {
	ev := &events{}
	a, aDeps := fakeModule("a", ev, nil, nil)
	b, bDeps := fakeModule("b", ev, nil, errors.New("bad file"))
	b.ProcessMetrics = true
	procReg := prometheus.NewRegistry()
	r, err := NewRunner(newFakeBackend(ev), []*Module{a, b}, Options{Registry: procReg, OwnRegistries: true})
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, r.Services())
	require.Equal(t, "a:1", r.Addr("a"))
	require.Empty(t, r.Addr("nope"))

	// Each service has its own prober and logger; a has its own
	// registry, b (ProcessMetrics) the process's.
	require.NotSame(t, aDeps.Prober, bDeps.Prober)
	require.NotSame(t, procReg, aDeps.Registry)
	require.Same(t, procReg, bDeps.Registry)

	done := make(chan error, 1)
	go func() { done <- r.Run() }()
	require.Eventually(t, r.Prober().IsReady, 5*time.Second, 10*time.Millisecond, "ready once every service is")
	require.True(t, r.Prober().IsHealthy())

	// One service not ready makes the process not ready.
	aDeps.Prober.NotReady("lagging")
	require.Eventually(t, func() bool { return !r.Prober().IsReady() }, 5*time.Second, 10*time.Millisecond)
	aDeps.Prober.Ready()
	require.Eventually(t, r.Prober().IsReady, 5*time.Second, 10*time.Millisecond)

	// Reload reaches every service, even past a failing one.
	err = r.Reload()
	require.ErrorContains(t, err, "reload b: bad file")

	r.Shutdown()
	require.False(t, r.Prober().IsReady())
	require.False(t, aDeps.Prober.IsReady(), "every service turns not ready on shutdown")
	require.False(t, bDeps.Prober.IsReady())
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after Shutdown")
	}
	require.Equal(t, []string{
		"new a", "new b", "reload a", "reload b",
		// Last started first: the service, then its subscribers.
		"close b", "close subscriber b", "close a", "close subscriber a",
	}, ev.list())
	// A second Close is a no-op.
	require.NoError(t, r.Close())
	require.Len(t, ev.list(), 8)
}

func TestRunnerClosesWhatItBuiltOnFailure(t *testing.T) {
	ev := &events{}
	a, _ := fakeModule("a", ev, nil, nil)
	b, _ := fakeModule("b", ev, errors.New("port in use"), nil)
	c, _ := fakeModule("c", ev, nil, nil)
	_, err := NewRunner(newFakeBackend(ev), []*Module{a, b, c}, Options{OwnRegistries: true})
	require.ErrorContains(t, err, "b: port in use")
	require.Equal(t, []string{"new a", "close subscriber b", "close a", "close subscriber a"}, ev.list(), "c is never built")
}

func TestRunnerSharedRegistryNeedsConsumerLabels(t *testing.T) {
	// Two subscribers of one service on one registry: the consumer label
	// keeps their metrics apart.
	ev := &events{}
	m := &Module{Name: "m", New: func(d Deps) (Service, error) {
		for _, c := range []string{"one", "two"} {
			if _, err := d.Bus.Subscriber("g-"+c, c); err != nil {
				return nil, err
			}
		}
		return &fakeService{name: "m", ev: ev, prober: d.Prober, stop: make(chan struct{})}, nil
	}}
	r, err := NewRunner(newFakeBackend(ev), []*Module{m}, Options{})
	require.NoError(t, err)
	require.NoError(t, r.Close())
}
