package main_test

// One loss suite for both buses: the consuming services as their own
// binaries on a bus that outlives them, each killed with SIGKILL mid-stream.

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tmaflow/tmaflow/pkg/broker/brokertest"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/peertest"
	"github.com/tmaflow/tmaflow/services/tmaflow/app"
)

// busPeer is a bus the service binaries of a split pipeline run on.
type busPeer struct {
	// flags are a service binary's bus flags.
	flags []string
	// read returns the values of topic's records.
	read func(t *testing.T, topic string) [][]byte
}

// natsBusAt is the NATS server at url.
func natsBusAt(url string) busPeer {
	return busPeer{flags: natsClientFlags(url), read: func(t *testing.T, topic string) [][]byte {
		var out [][]byte
		for _, r := range readNATS(t, url, topic) {
			out = append(out, r.Value)
		}
		return out
	}}
}

// startNATSBus starts Debian's nats-server.
func startNATSBus(t *testing.T) busPeer {
	addr := peertest.FreeAddr(t)
	peertest.NATSServer(t, addr, t.TempDir())
	return natsBusAt("nats://" + addr)
}

// startKafkaBus starts the embedded broker (kfake on a data dir, the
// topics created) in the test process. A killed member leaves its group
// after the session timeout: 6 s, the least a Kafka broker accepts
// (group.min.session.timeout.ms).
func startKafkaBus(t *testing.T) busPeer {
	addr := startBroker(t, t.TempDir(), "127.0.0.1:0").Addrs()[0]
	return busPeer{
		flags: []string{"-bus=kafka", "-kafka.brokers=" + addr, "-kafka.heartbeat-interval=500ms", "-kafka.session-timeout=6s"},
		read: func(t *testing.T, topic string) [][]byte {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			recs, err := brokertest.ReadAll(ctx, addr, topic)
			require.NoError(t, err)
			var out [][]byte
			for _, r := range recs {
				out = append(out, r.Value)
			}
			return out
		},
	}
}

// firingAlert reports whether the bus's topic-alerts holds a firing
// alert named name.
func firingAlert(t *testing.T, bus busPeer, name string) bool {
	t.Helper()
	for _, v := range bus.read(t, contract.TopicAlerts) {
		var a struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		}
		require.NoError(t, json.Unmarshal(v, &a))
		if a.State == "firing" && a.Labels["alertname"] == name {
			return true
		}
	}
	return false
}

// TestConsumerKill9 runs monitor, labeler, persister and ruler as their
// own binaries on Kafka (kfake) and on Debian's nats-server, kills one
// consuming service with SIGKILL while a probe posts 200 observations/s,
// restarts it a second later, and finds every acknowledged observation in
// the TSDB exactly once and nothing in topic-dlq: what the killed consumer
// had not committed (Kafka) or acknowledged (NATS) came again, mid-batch
// included, and the TSDB took the re-delivered samples as the ones it
// had. The ruler case also moves the values above the HighCPUUsage
// threshold while the ruler is down: it fires once restarted (from the
// window it replays).
func TestConsumerKill9(t *testing.T) {
	for _, bus := range []struct {
		name  string
		start func(*testing.T) busPeer
	}{
		{"kafka", startKafkaBus},
		{"nats", startNATSBus},
	} {
		for _, victim := range []string{app.TargetLabeler, app.TargetPersister, app.TargetRuler} {
			t.Run(bus.name+"/"+victim, func(t *testing.T) {
				np := newSplitPipeline(t, bus.start(t))
				services := []string{app.TargetMonitor, app.TargetLabeler, app.TargetPersister}
				if victim == app.TargetRuler {
					services = append(services, app.TargetRuler)
				}
				for _, s := range services {
					np.start(s)
				}
				obs := newObservations(5 * time.Millisecond)
				killedAt := obs.killMidStream(t, "http://"+np.addrs[app.TargetMonitor]+"/monitor", func() {
					np.kill(victim)
					if victim == app.TargetRuler {
						obs.value.Store(95.0) // above the threshold from now on
					}
				}, func() { np.start(victim) })
				t.Logf("%s on %s killed after %d acknowledged observations, restarted a second later", victim, bus.name, killedAt)

				rep := obs.awaitStored(t, "http://"+np.addrs[app.TargetPersister]+"/api/v1", 60*time.Second)
				t.Logf("%s on %s killed: %s; topic-metrics holds %d records", victim, bus.name, rep, len(np.bus.read(t, contract.TopicMetrics)))
				require.Zero(t, obs.fail.Load(), "the monitor kept answering")
				require.Equal(t, 1, rep.series)
				require.Zero(t, rep.lost, "acknowledged observations lost")
				require.Zero(t, rep.dup+rep.extra, "duplicate or unknown samples")
				require.Equal(t, rep.acked, rep.stored)
				require.Empty(t, np.bus.read(t, contract.TopicDLQ), "no sample dead-lettered (a re-delivery refused)")
				if victim == app.TargetRuler {
					require.Eventually(t, func() bool { return firingAlert(t, np.bus, "HighCPUUsage") }, 30*time.Second, 500*time.Millisecond,
						"the threshold crossed while the ruler was down fires once it is back")
				}
				np.stop()
			})
		}
	}
}
