package module

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// echoModule is a module with one flag (-greeting), a subcommand and a
// service that publishes its greeting once it runs.
func echoModule(published chan<- string) *Module {
	var greeting string
	var got Process
	return &Module{
		Name:      "echo",
		GCPercent: 400,
		RegisterFlags: func(f service.FlagSet) {
			f.StringVar(&greeting, "greeting", "hello", "What to publish.")
		},
		Resolve: func(p Process) { got = p },
		Validate: func() error {
			if greeting == "" {
				return errors.New("greeting must not be empty")
			}
			if got.ConsumerGroup == "odd" {
				return errors.New("the group reached the module")
			}
			return nil
		},
		New: func(d Deps) (Service, error) {
			return &echoService{pub: d.Bus.Publisher(), greeting: greeting, published: published, prober: d.Prober, stop: make(chan struct{})}, nil
		},
		Commands: map[string]Command{"shout": func(name string, args []string, _ io.Reader, stdout, _ io.Writer) error {
			_, err := fmt.Fprintln(stdout, name, strings.ToUpper(strings.Join(args, " ")))
			return err
		}},
	}
}

type echoService struct {
	pub       message.Publisher
	greeting  string
	published chan<- string
	prober    *service.Prober
	stop      chan struct{}
}

func (s *echoService) Execute() error {
	s.prober.Healthy()
	if err := s.pub.Publish(contract.TopicDLQ, message.NewMessage("1", []byte(s.greeting))); err != nil {
		return err
	}
	s.published <- s.greeting
	<-s.stop
	return nil
}
func (s *echoService) Interrupt(error) { close(s.stop) }
func (s *echoService) Reload() error   { return nil }
func (s *echoService) Addr() string    { return "" }

func TestMainFlagsAndErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		module  func(*Module)
		wantErr string
		wantOut string
	}{
		{name: "help", args: []string{"-h"}, wantErr: flag.ErrHelp.Error()},
		{name: "subcommand", args: []string{"shout", "a", "b"}, wantOut: "echo shout A B\n"},
		{name: "no brokers", args: []string{}, wantErr: "kafka.brokers: at least one broker is required"},
		{name: "unknown bus", args: []string{"-bus=carrier-pigeon", "-kafka.brokers=127.0.0.1:1"}, wantErr: `bus "carrier-pigeon": want one of kafka`},
		{name: "module flag unprefixed", args: []string{"-kafka.brokers=127.0.0.1:1", "-greeting="}, wantErr: "greeting must not be empty"},
		{name: "module flag from environment", args: []string{"-kafka.brokers=127.0.0.1:1"}, env: map[string]string{"TMAFLOW_GREETING": ""}, wantErr: "greeting must not be empty"},
		{name: "errors joined", args: []string{"-greeting=", "-runtime.gc-percent=-2"}, wantErr: "greeting must not be empty\nruntime.gc-percent must be >= -1, got -2\nkafka.brokers"},
		{name: "kafka group reaches the module", args: []string{"-kafka.brokers=127.0.0.1:1", "-kafka.consumer-group=odd"}, wantErr: "the group reached the module"},
		{name: "nats group reaches the module", args: []string{"-bus=nats", "-nats.url=nats://127.0.0.1:1", "-nats.consumer-group=odd"}, wantErr: "the group reached the module"},
		{name: "nats group refused where unused", module: func(m *Module) { m.ConsumerGroupFlagUnused = "it reads every partition" }, args: []string{"-bus=nats", "-nats.url=nats://127.0.0.1:1", "-nats.consumer-group=g"}, wantErr: "nats.consumer-group is not used by the echo: it reads every partition"},
		{name: "kafka group refused where unused", module: func(m *Module) { m.ConsumerGroupFlagUnused = "it reads every partition" }, args: []string{"-kafka.brokers=127.0.0.1:1", "-kafka.consumer-group=g"}, wantErr: "kafka.consumer-group is not used by the echo: it reads every partition"},
		{name: "unexpected arguments", args: []string{"-kafka.brokers=127.0.0.1:1", "extra"}, wantErr: `unexpected arguments ["extra"]`},
		{name: "prefixed flag is not the binary's", args: []string{"-echo.greeting=x"}, wantErr: "flag provided but not defined: -echo.greeting"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			m := echoModule(nil)
			if tc.module != nil {
				tc.module(m)
			}
			var out strings.Builder
			err := Main(context.Background(), m, tc.args, strings.NewReader(""), &out, io.Discard)
			if tc.wantErr == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tc.wantErr)
			}
			require.Equal(t, tc.wantOut, out.String())
		})
	}
}

// TestMainRuns runs a module as its own binary against an in-process
// Kafka until its context ends.
func TestMainRuns(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	require.NoError(t, err)
	t.Cleanup(cluster.Close)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	published := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Main(ctx, echoModule(published), []string{
			"-kafka.brokers=" + strings.Join(cluster.ListenAddrs(), ","), "-greeting=hi", "-log.level=error",
		}, strings.NewReader(""), io.Discard, io.Discard)
	}()
	select {
	case got := <-published:
		require.Equal(t, "hi", got, "the flag reached the service, the bus acknowledged")
	case err := <-done:
		t.Fatalf("Main returned early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("nothing published")
	}
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Main did not return after its context ended")
	}
}
