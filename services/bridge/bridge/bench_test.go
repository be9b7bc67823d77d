package bridge

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"
)

// slowBus acknowledges after a fixed delay, as a broker with acks=all.
type slowBus struct {
	*fakeBus
	delay time.Duration
}

func (b slowBus) Publish(topic string, msgs ...*message.Message) error {
	time.Sleep(b.delay)
	return b.fakeBus.Publish(topic, msgs...)
}

// BenchmarkPublishers measures QoS-1 messages/s through the embedded
// broker to a bus acknowledging in 2 ms, by concurrent publishers.
func BenchmarkPublishers(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			cfg := testConfig(b)
			s, err := New(cfg, Options{Publisher: slowBus{newFakeBus(), 2 * time.Millisecond}})
			require.NoError(b, err)
			done := make(chan error, 1)
			go func() { done <- s.Execute() }()
			defer func() { s.Interrupt(nil); <-done }()
			require.Eventually(b, s.prober.IsReady, 10*time.Second, 10*time.Millisecond)
			clients := make([]paho.Client, n)
			for i := range clients {
				c, err := tryConnect(s.MQTTAddr(), fmt.Sprintf("b%d", i), "acme-device", "acme-secret")
				require.NoError(b, err)
				defer c.Disconnect(0)
				clients[i] = c
			}
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			per := max(1, b.N/n)
			for _, c := range clients {
				wg.Go(func() {
					var toks []paho.Token
					for j := range per {
						toks = append(toks, c.Publish("acme/sites/s/devices/d/metrics/m", 1, false, fmt.Sprint(j)))
						if len(toks) == 16 {
							toks[0].Wait()
							toks = toks[1:]
						}
					}
					for _, tok := range toks {
						tok.Wait()
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(per*n)/time.Since(start).Seconds(), "msg/s")
		})
	}
}
