package mqttbench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// connectTimeout bounds one client's connect and a step's final acks.
const connectTimeout = time.Minute

// swarm is n paho clients publishing QoS 1 at once.
type swarm struct {
	clients []paho.Client
}

// connectSwarm connects n clients with ids <id>-<i>, 50 at a time.
func connectSwarm(addr, user, pass, id string, n int) (*swarm, error) {
	s := &swarm{clients: make([]paho.Client, n)}
	sem := make(chan struct{}, 50)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := range n {
		s.clients[i] = paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).
			SetClientID(fmt.Sprintf("%s-%d", id, i)).SetUsername(user).SetPassword(pass).
			SetCleanSession(true).SetProtocolVersion(4).SetAutoReconnect(false).
			SetKeepAlive(time.Minute).SetWriteTimeout(connectTimeout))
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			tok := s.clients[i].Connect()
			if !tok.WaitTimeout(connectTimeout) {
				mu.Lock()
				errs = append(errs, fmt.Errorf("client %d: connect timed out", i))
				mu.Unlock()
				return
			}
			if err := tok.Error(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("client %d: connect: %w", i, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *swarm) close() {
	for _, c := range s.clients {
		c.Disconnect(0)
	}
}

// stepResult is what one publishing step did.
type stepResult struct {
	Publishers int
	Published  int64
	Acked      int64
	Failed     int64
	// Elapsed is from the first publish to the last acknowledgement.
	Elapsed time.Duration
}

// publish has every client publish QoS 1 to topic(i) for d with at most
// window messages unacknowledged, then waits for the acknowledgements.
func (s *swarm) publish(ctx context.Context, d time.Duration, window int, topic func(i int) string, payload func(i int, seq int64) []byte) stepResult {
	var published, acked, failed atomic.Int64
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i, c := range s.clients {
		wg.Go(func() {
			t := topic(i)
			pending := make([]paho.Token, 0, window)
			wait := func(tok paho.Token) {
				if tok.WaitTimeout(connectTimeout) && tok.Error() == nil {
					acked.Add(1)
				} else {
					failed.Add(1)
				}
			}
			for seq := int64(0); time.Now().Before(deadline) && ctx.Err() == nil; seq++ {
				if len(pending) == window {
					wait(pending[0])
					pending = append(pending[:0], pending[1:]...)
				}
				pending = append(pending, c.Publish(t, 1, false, payload(i, seq)))
				published.Add(1)
			}
			for _, tok := range pending {
				wait(tok)
			}
		})
	}
	wg.Wait()
	return stepResult{Publishers: len(s.clients), Published: published.Load(), Acked: acked.Load(), Failed: failed.Load(), Elapsed: time.Since(start)}
}
