package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// Batch is what one Read returns: the series of the records in
// [First, Next). Seqs of that range without a record (dropped, corrupt)
// are covered too, so acknowledging the batch moves past them.
type Batch struct {
	First, Next uint64
	Series      []samples.Series
	Records     int
	Samples     int
}

// Reader reads records in seq order for one sender. It is not safe for
// concurrent use; make one per sender.
type Reader struct {
	q       *Queue
	seg     *segment // nil: not positioned
	buf     []byte   // the segment's bytes [bufOff, bufOff+len(buf))
	bufOff  int64
	off     int // next byte of buf to scan
	pending *scanned
	next    uint64 // seq after the last record returned
}

// NewReader returns a reader of q.
func (q *Queue) NewReader() *Reader { return &Reader{q: q} }

// Read returns the records with seq in [from, until), oldest first, at
// least one and up to maxSamples samples. It waits for a record at from
// or later when there is none yet. A range without records comes back as
// an empty batch covering it.
func (r *Reader) Read(ctx context.Context, from, until uint64, maxSamples int) (Batch, error) {
	for {
		r.q.mu.Lock()
		head, wake, closed := r.q.next, r.q.wake, r.q.closed
		r.q.mu.Unlock()
		if closed {
			return Batch{}, errors.New("queue closed")
		}
		if from >= head {
			select {
			case <-ctx.Done():
				return Batch{}, ctx.Err()
			case <-wake:
				continue
			}
		}
		if b, ok := r.fromRecent(from, until, maxSamples); ok {
			return b, nil
		}
		if r.seg == nil || r.next != from {
			r.seek(from)
		}
		b := Batch{First: from, Next: from}
		for b.Samples < maxSamples {
			rec, err := r.peek()
			if err != nil {
				return Batch{}, err
			}
			if rec == nil {
				break
			}
			if rec.seq < from {
				r.pending = nil
				continue
			}
			if rec.seq >= until {
				break
			}
			r.pending = nil
			b.Series = append(b.Series, rec.series...)
			b.Samples += countSamples(rec.series)
			b.Records++
			b.Next = rec.seq + 1
		}
		if b.Records == 0 {
			// Every record below head was written before head was read,
			// and the scan read at least that far: [from, head) has none.
			b.Next = min(head, until)
		}
		r.next = b.Next
		return b, nil
	}
}

// fromRecent serves the read from the records kept in memory when they
// hold from and everything after it up to the head. The reader's disk
// position is left behind: a later read from disk seeks again.
func (r *Reader) fromRecent(from, until uint64, maxSamples int) (Batch, bool) {
	r.q.mu.Lock()
	defer r.q.mu.Unlock()
	rec := r.q.recent
	if len(rec) == 0 || from < rec[0].seq || from >= r.q.next {
		return Batch{}, false
	}
	b := Batch{First: from, Next: from}
	for _, x := range rec[from-rec[0].seq:] {
		if x.seq >= until || b.Samples >= maxSamples {
			break
		}
		b.Series = append(b.Series, x.series...)
		b.Samples += countSamples(x.series)
		b.Records++
		b.Next = x.seq + 1
	}
	if b.Records == 0 {
		return Batch{}, false
	}
	r.next, r.seg = b.Next, nil
	return b, true
}

// seek positions r on the segment that holds from.
func (r *Reader) seek(from uint64) {
	r.q.mu.Lock()
	defer r.q.mu.Unlock()
	r.seg, r.buf, r.bufOff, r.off, r.pending = nil, nil, 0, 0, nil
	for _, s := range r.q.segs {
		if s.base > from && r.seg != nil {
			break
		}
		r.seg = s
	}
}

// peek returns the next record without consuming it (nil at the end of
// what is written).
func (r *Reader) peek() (*scanned, error) {
	if r.pending != nil {
		return r.pending, nil
	}
	for r.seg != nil {
		if rec, _, ok := scan(r.buf, r.off); ok {
			r.off = rec.end
			r.pending = &rec
			return r.pending, nil
		}
		r.off = len(r.buf)
		more, err := r.refill()
		if err != nil {
			return nil, err
		}
		if !more {
			return nil, nil
		}
	}
	return nil, nil
}

// refill loads what was appended to the segment since, or moves to the
// next segment. It reports false at the end of what is written.
func (r *Reader) refill() (bool, error) {
	r.q.mu.Lock()
	size, present, nextSeg := int64(0), false, (*segment)(nil)
	for i, s := range r.q.segs {
		if s == r.seg {
			size, present = s.size, true
		}
		if s.base > r.seg.base && nextSeg == nil {
			nextSeg = r.q.segs[i]
		}
	}
	r.q.mu.Unlock()
	end := r.bufOff + int64(len(r.buf))
	if present && size > end {
		b, err := readAt(r.seg.path, end, size-end)
		if err == nil {
			r.buf, r.bufOff, r.off = b, end, 0
			return true, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return false, err
		}
		// Dropped meanwhile: go on with the next segment.
	}
	if nextSeg == nil {
		return false, nil
	}
	r.seg, r.buf, r.bufOff, r.off = nextSeg, nil, 0, 0
	return true, nil
}

func readAt(path string, off, n int64) (_ []byte, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read segment: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close segment: %w", cerr)
		}
	}()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read segment %s: %w", path, err)
	}
	return b, nil
}
