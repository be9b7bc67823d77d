package labeler

import (
	"context"
	"slices"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/samples"
)

// maxOutBytes is the most a merged topic-metrics record holds (half the
// broker's default 1 MiB record limit); more of one resource goes into a
// further record with the same key, which the broker keeps in order.
const maxOutBytes = 512 << 10

// batchOut merges what the records of one consumed batch make into one
// topic-metrics record per tenant, resource and source: fewer, larger
// records on the second hop. Series keep the order of the records they
// came from, so a resource's samples are still appended in order.
type batchOut struct {
	records int // consumed records it is made of
	outs    []out
	bytes   []int   // encoded size of each out, at most
	at      []int64 // earliest received-at (unix ns) of what each holds; 0: none
	index   map[string]int
}

func (s *Service) newBatchOut(records int) *batchOut {
	return &batchOut{records: records, index: map[string]int{}}
}

// add merges the outs one consumed record made.
func (b *batchOut) add(msg *message.Message, outs []out) {
	at, _ := strconv.ParseInt(msg.Metadata.Get(contract.HeaderReceivedAt), 10, 64)
	for _, o := range outs {
		k := string(o.key) + "\x00" + o.batch.Source
		n := samples.EncodedLen(&o.batch)
		i, ok := b.index[k]
		if !ok || b.bytes[i]+n > maxOutBytes {
			b.index[k] = len(b.outs)
			b.outs = append(b.outs, o)
			b.bytes = append(b.bytes, n)
			b.at = append(b.at, at)
			continue
		}
		// Clipped: the first out's series may share memory with what
		// mapping made, and must not be written past its length.
		b.outs[i].batch.Series = append(slices.Clip(b.outs[i].batch.Series), o.batch.Series...)
		b.bytes[i] += n
		if at > 0 && (b.at[i] == 0 || at < b.at[i]) {
			b.at[i] = at
		}
	}
}

// messages encodes the merged batches into one buffer and returns them as
// topic-metrics records, keyed by tenant and resource, each with the
// earliest received-at of what it holds.
func (b *batchOut) messages(ctx context.Context) []*message.Message {
	if len(b.outs) == 0 {
		return nil
	}
	size := 0
	for i := range b.outs {
		size += samples.EncodedLen(&b.outs[i].batch)
	}
	// One allocation for every payload; a publisher may keep them after
	// Publish returns, so nothing else ever writes to this buffer.
	buf := make([]byte, 0, size)
	msgs := make([]*message.Message, len(b.outs))
	for i := range b.outs {
		off := len(buf)
		buf = samples.Encode(buf, &b.outs[i].batch)
		// An empty UUID: the Kafka adapter then adds no UUID header, so
		// consumers see only the contract's headers.
		m := message.NewMessage("", buf[off:len(buf):len(buf)])
		m.Metadata[contract.HeaderTenant] = b.outs[i].batch.Tenant
		if b.at[i] > 0 {
			m.Metadata[contract.HeaderReceivedAt] = strconv.FormatInt(b.at[i], 10)
		}
		bus.SetKey(m, b.outs[i].key)
		m.SetContext(ctx)
		msgs[i] = m
	}
	return msgs
}
