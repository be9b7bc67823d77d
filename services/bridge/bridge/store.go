package bridge

import (
	"strconv"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
)

// store keeps the embedded broker's sessions, subscriptions, retained
// messages and outbound in-flight messages on disk (mochi's bbolt hook),
// but not the acknowledgements of inbound publishes: the bridge sends one
// only after Kafka stored the message, so it has nothing to recover, and
// storing it would cost two fsyncs per message, serialised over every
// client (measured: ~800 messages/s whatever the number of clients).
type store struct {
	*bolt.Hook
	// outbound holds the keys of the in-flight messages on disk.
	outbound sync.Map
}

func newStore() *store { return &store{Hook: new(bolt.Hook)} }

// Provides leaves out the $SYS counters: nothing needs them across
// restarts, and the hook logs an error when a new store has none.
func (s *store) Provides(b byte) bool {
	if b == mqtt.OnSysInfoTick || b == mqtt.StoredSysInfo {
		return false
	}
	return s.Hook.Provides(b)
}

// inflightKey is the bbolt hook's key of an in-flight message.
func inflightKey(cl *mqtt.Client, pk packets.Packet) string {
	return storage.InflightKey + "_" + cl.ID + ":" + pk.FormatID()
}

// OnQosPublish stores a message the broker sends (not an ack it gives).
func (s *store) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	if pk.FixedHeader.Type != packets.Publish {
		return
	}
	s.outbound.Store(inflightKey(cl, pk), struct{}{})
	s.Hook.OnQosPublish(cl, pk, sent, resends)
}

// OnQosComplete forgets a delivered message; inbound flows were never stored.
func (s *store) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if _, ok := s.outbound.LoadAndDelete(inflightKey(cl, pk)); ok {
		s.Hook.OnQosComplete(cl, pk)
	}
}

// OnQosDropped forgets a dropped message.
func (s *store) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if _, ok := s.outbound.LoadAndDelete(inflightKey(cl, pk)); ok {
		s.Hook.OnQosDropped(cl, pk)
	}
}

// StoredInflightMessages restores the outbound in-flight messages and
// remembers their keys, so their completion removes them. The bbolt hook
// does not store the packet id (mochi v2.7.9); it is the key's suffix, and
// without it the message would be resent as packet 0, which clients refuse.
func (s *store) StoredInflightMessages() ([]storage.Message, error) {
	v, err := s.Hook.StoredInflightMessages()
	for i := range v {
		m := &v[i]
		s.outbound.Store(m.ID, struct{}{})
		if m.PacketID == 0 {
			if id, perr := strconv.ParseUint(m.ID[strings.LastIndexByte(m.ID, ':')+1:], 10, 16); perr == nil {
				m.PacketID = uint16(id)
			}
		}
	}
	return v, err
}
