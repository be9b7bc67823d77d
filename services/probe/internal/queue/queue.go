// Package queue is the probe's on-disk write-ahead queue: every sample is
// appended to a segment file (checksummed records, group-commit fsync)
// before any output sees it, and each output persists what it has
// acknowledged, so an outage or a kill -9 loses nothing already sampled
// and resends at most the batches in flight.
package queue

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// Policy is what happens at the queue's cap.
type Policy string

// Policies.
const (
	// DropOldest deletes the oldest segments to make room.
	DropOldest Policy = "drop-oldest"
	// StopSampling refuses new samples until outputs catch up.
	StopSampling Policy = "stop-sampling"
)

// ErrFull refuses an append at the cap under StopSampling.
var ErrFull = errors.New("queue full: sampling stopped until outputs catch up (policy stop-sampling)")

// Options configure a queue; zero values take the defaults.
type Options struct {
	Dir string
	// Outputs name the outputs whose acknowledgements are tracked. An
	// output new to the directory starts at the head.
	Outputs []string
	// SegmentBytes is the size at which a segment is sealed (1 MiB).
	SegmentBytes int64
	// MaxBytes caps the segments' total size (0: no cap).
	MaxBytes int64
	// MaxAge deletes sealed segments whose newest sample is older (0: no
	// limit).
	MaxAge time.Duration
	// Policy applies at MaxBytes (DropOldest).
	Policy Policy
	// SyncInterval is the group commit's period (1 s): what a power loss
	// may take; a killed process loses nothing written.
	SyncInterval time.Duration
	Now          func() time.Time
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
}

// segment is one segment file and what its records hold.
type segment struct {
	base        uint64 // from the file name: no record has a lower seq
	path        string
	first, last uint64 // valid when records > 0
	records     int
	samples     int
	size        int64
	minT, maxT  int64
}

func (s *segment) add(seq uint64, series []samples.Series, size int64) {
	if s.records == 0 {
		s.first, s.minT, s.maxT = seq, int64(^uint64(0)>>1), -int64(^uint64(0)>>1)-1
	}
	s.last = seq
	s.records++
	s.size += size
	for _, sr := range series {
		s.samples += len(sr.Samples)
		for _, smp := range sr.Samples {
			s.minT, s.maxT = min(s.minT, smp.TimestampMs), max(s.maxT, smp.TimestampMs)
		}
	}
}

// Queue is the on-disk queue. Append, Ack, readers and Run may be used
// concurrently.
type Queue struct {
	opts   Options
	logger *slog.Logger
	m      *metrics

	mu       sync.Mutex
	segs     []*segment // by base; the last is appended to
	f        *os.File   // the last segment's
	next     uint64     // seq of the next record
	dirty    bool
	acked    map[string]ackSet
	buffered map[string]int64
	wake     chan struct{} // closed on every append
	closed   bool
	// recent are the last records appended, in seq order, so that live
	// senders read them without reading and decoding them from disk.
	recent []scanned

	ackMu map[string]*sync.Mutex // orders the writes of one output's offsets
}

// recentRecords is how many of the last records stay in memory.
const recentRecords = 16

var (
	segmentName = regexp.MustCompile(`^([0-9]{20})\.seg$`)
	outputName  = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

// Open opens (or creates) the queue in opts.Dir: it scans every segment,
// reports corrupt regions and starts a new segment to append to.
func Open(opts Options) (_ *Queue, err error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 1 << 20
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = time.Second
	}
	if opts.Policy == "" {
		opts.Policy = DropOldest
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create queue dir %s: %w", opts.Dir, err)
	}
	q := &Queue{
		opts: opts, logger: opts.Logger,
		acked: map[string]ackSet{}, buffered: map[string]int64{}, ackMu: map[string]*sync.Mutex{},
		wake: make(chan struct{}),
	}
	q.m = newMetrics(opts.Registerer, q)
	fresh := map[string]bool{}
	for _, o := range opts.Outputs {
		if !outputName.MatchString(o) {
			return nil, fmt.Errorf("output name %q: want letters, digits, '_', '.', '-'", o)
		}
		path := q.ackPath(o)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			fresh[o] = true
		}
		a, err := readAckSet(path)
		if err != nil {
			return nil, err
		}
		q.acked[o], q.ackMu[o] = a, &sync.Mutex{}
		q.next = max(q.next, a.end())
	}
	if err := q.load(); err != nil {
		return nil, err
	}
	for o := range fresh {
		// A new output starts at the head, not at what others left.
		q.acked[o] = ackSet{}.add(0, q.next)
		q.buffered[o] = 0
	}
	for _, o := range opts.Outputs {
		q.m.buffered.WithLabelValues(o).Set(float64(q.buffered[o]))
		if err := writeFileAtomic(q.ackPath(o), q.acked[o].marshal()); err != nil {
			return nil, err
		}
	}
	q.deleteAcked()
	if err := q.startSegment(); err != nil {
		return nil, err
	}
	return q, nil
}

func (q *Queue) ackPath(output string) string {
	return filepath.Join(q.opts.Dir, "acked-"+output)
}

// load scans the segment files.
func (q *Queue) load() error {
	entries, err := os.ReadDir(q.opts.Dir)
	if err != nil {
		return fmt.Errorf("read queue dir %s: %w", q.opts.Dir, err)
	}
	for _, e := range entries {
		m := segmentName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		base, err := strconv.ParseUint(m[1], 10, 64)
		if err != nil {
			return fmt.Errorf("segment %s: %w", e.Name(), err)
		}
		seg := &segment{base: base, path: filepath.Join(q.opts.Dir, e.Name())}
		if err := q.scanSegment(seg); err != nil {
			return err
		}
		q.segs = append(q.segs, seg)
		q.next = max(q.next, base)
		if seg.records > 0 {
			q.next = max(q.next, seg.last+1)
		}
	}
	slices.SortFunc(q.segs, func(a, b *segment) int { return cmpUint(a.base, b.base) })
	return nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// scanSegment reads a sealed segment's records into seg and reports
// corrupt regions.
func (q *Queue) scanSegment(seg *segment) error {
	b, err := os.ReadFile(seg.path)
	if err != nil {
		return fmt.Errorf("read segment %s: %w", seg.path, err)
	}
	for off := 0; off < len(b); {
		rec, skipped, ok := scan(b, off)
		if skipped > 0 {
			q.m.corruptRecords.Inc()
			q.m.corruptBytes.Add(float64(skipped))
			q.logger.Warn("corrupt segment region skipped", "segment", seg.path, "offset", off, "bytes", skipped)
		}
		if !ok {
			break
		}
		// A record outside the segment's range cannot be trusted to be
		// unique: it is corruption that happens to checksum.
		if rec.seq < seg.base {
			q.m.corruptRecords.Inc()
			q.logger.Warn("record out of its segment's range skipped", "segment", seg.path, "seq", rec.seq)
		} else {
			seg.add(rec.seq, rec.series, int64(rec.end-off-skipped))
			n := int64(countSamples(rec.series))
			for o, a := range q.acked {
				if !a.has(rec.seq) {
					q.buffered[o] += n
				}
			}
		}
		off = rec.end
	}
	seg.size = int64(len(b))
	return nil
}

// startSegment seals the segment appended to and starts a new one at
// q.next. Callers hold mu (or own q alone).
func (q *Queue) startSegment() error {
	if q.f != nil {
		if err := q.syncLocked(); err != nil {
			return err
		}
		if err := q.f.Close(); err != nil {
			return fmt.Errorf("close segment %s: %w", q.segs[len(q.segs)-1].path, err)
		}
		q.f = nil
	}
	// A segment left empty (a restart without appends) is replaced.
	if n := len(q.segs); n > 0 && q.segs[n-1].records == 0 && q.segs[n-1].base <= q.next {
		if err := os.Remove(q.segs[n-1].path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove empty segment: %w", err)
		}
		q.segs = q.segs[:n-1]
	}
	seg := &segment{base: q.next, path: filepath.Join(q.opts.Dir, fmt.Sprintf("%020d.seg", q.next))}
	f, err := os.OpenFile(seg.path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	q.f = f
	q.segs = append(q.segs, seg)
	return nil
}

// Append writes one collection's series as one record. It returns once
// the record is written (in the page cache: a killed process loses
// nothing; the group commit makes it durable within SyncInterval).
func (q *Queue) Append(series []samples.Series) error {
	n := countSamples(series)
	if n == 0 {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return errors.New("queue closed")
	}
	rec := encodeRecord(nil, q.next, series)
	if err := q.makeRoom(int64(len(rec))); err != nil {
		q.m.refused.Add(float64(n))
		return err
	}
	if _, err := q.f.Write(rec); err != nil {
		return fmt.Errorf("append to queue: %w", err)
	}
	seg := q.segs[len(q.segs)-1]
	seg.add(q.next, series, int64(len(rec)))
	if len(q.recent) == recentRecords {
		q.recent = append(q.recent[:0], q.recent[1:]...)
	}
	q.recent = append(q.recent, scanned{seq: q.next, series: series})
	q.next++
	q.dirty = true
	q.m.appended.Add(float64(n))
	for o := range q.acked {
		q.buffered[o] += int64(n)
		q.m.buffered.WithLabelValues(o).Add(float64(n))
	}
	close(q.wake)
	q.wake = make(chan struct{})
	if seg.size >= q.opts.SegmentBytes {
		return q.startSegment()
	}
	return nil
}

// makeRoom applies the cap before a record of size bytes is appended.
func (q *Queue) makeRoom(size int64) error {
	if q.opts.MaxBytes <= 0 || q.bytesLocked()+size <= q.opts.MaxBytes {
		return nil
	}
	q.deleteAcked()
	for q.bytesLocked()+size > q.opts.MaxBytes {
		if q.opts.Policy == StopSampling {
			return ErrFull
		}
		if len(q.segs) == 1 {
			if q.segs[0].records == 0 {
				return fmt.Errorf("record of %d bytes exceeds the queue's cap of %d: %w", size, q.opts.MaxBytes, ErrFull)
			}
			if err := q.startSegment(); err != nil {
				return err
			}
		}
		if err := q.drop(q.segs[0], "cap"); err != nil {
			return err
		}
	}
	return nil
}

func (q *Queue) bytesLocked() int64 {
	var n int64
	for _, s := range q.segs {
		n += s.size
	}
	return n
}

// drop deletes a sealed segment before every output acknowledged it,
// counting per output the samples it had not.
func (q *Queue) drop(seg *segment, reason string) error {
	b, err := os.ReadFile(seg.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read segment %s: %w", seg.path, err)
	}
	lost := map[string]int64{}
	for off := 0; off < len(b); {
		rec, _, ok := scan(b, off)
		if !ok {
			break
		}
		for o, a := range q.acked {
			if !a.has(rec.seq) {
				lost[o] += int64(countSamples(rec.series))
			}
		}
		off = rec.end
	}
	if err := q.remove(seg); err != nil {
		return err
	}
	// Dropped is dropped for live senders too.
	q.recent = slices.DeleteFunc(q.recent, func(x scanned) bool { return seg.records > 0 && x.seq <= seg.last })
	for o, n := range lost {
		q.buffered[o] -= n
		q.m.buffered.WithLabelValues(o).Sub(float64(n))
		q.m.dropped.WithLabelValues(o, reason).Add(float64(n))
		q.logger.Warn("queue segment dropped before it was shipped", "output", o, "reason", reason, "samples", n, "segment", seg.path)
	}
	return nil
}

func (q *Queue) remove(seg *segment) error {
	if err := os.Remove(seg.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove segment: %w", err)
	}
	q.segs = slices.DeleteFunc(q.segs, func(s *segment) bool { return s == seg })
	return nil
}

// deleteAcked removes sealed segments every output acknowledged.
func (q *Queue) deleteAcked() {
	for len(q.segs) > 1 || (len(q.segs) == 1 && q.f == nil) {
		seg := q.segs[0]
		for _, a := range q.acked {
			if seg.records > 0 && !a.covers(seg.first, seg.last+1) {
				return
			}
		}
		if err := q.remove(seg); err != nil {
			q.logger.Warn("remove acknowledged segment", "err", err)
			return
		}
	}
}

// Ack records that output delivered the records [first, next), holding
// n samples, and persists it before returning.
func (q *Queue) Ack(output string, first, next uint64, n int) error {
	mu := q.ackMu[output]
	if mu == nil {
		return fmt.Errorf("unknown output %q", output)
	}
	mu.Lock()
	defer mu.Unlock()
	q.mu.Lock()
	q.acked[output] = q.acked[output].add(first, next)
	q.buffered[output] -= int64(n)
	q.m.buffered.WithLabelValues(output).Sub(float64(n))
	b := q.acked[output].marshal()
	q.mu.Unlock()
	return writeFileAtomic(q.ackPath(output), b)
}

// Head is the seq the next record will get.
func (q *Queue) Head() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.next
}

// AckedEnd is the end of output's highest acknowledged span.
func (q *Queue) AckedEnd(output string) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.acked[output].end()
}

// Gap is output's oldest hole below limit: [from, to) not acknowledged,
// from at or after the oldest record still queued. ok false: none.
func (q *Queue) Gap(output string, limit uint64) (from, to uint64, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	oldest := q.next
	for _, s := range q.segs {
		if s.records > 0 {
			oldest = s.first
			break
		}
	}
	a := q.acked[output]
	from = a.firstGap(oldest)
	if from >= limit {
		return 0, 0, false
	}
	return from, a.gapEnd(from, limit), true
}

// Buffered is the number of samples output has not acknowledged.
func (q *Queue) Buffered(output string) int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.buffered[output]
}

type stats struct {
	bytes    int64
	segments int
	oldestMs int64
}

func (q *Queue) stats() stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	st := stats{bytes: q.bytesLocked(), segments: len(q.segs)}
	for _, s := range q.segs {
		if s.records > 0 {
			st.oldestMs = s.minT
			break
		}
	}
	return st
}

// Run group-commits the segment appended to every SyncInterval and
// applies MaxAge, until stop is closed.
func (q *Queue) Run(stop <-chan struct{}) error {
	t := time.NewTicker(q.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return nil
		case <-t.C:
		}
		q.mu.Lock()
		if err := q.syncLocked(); err != nil {
			q.logger.Error("queue group commit", "err", err)
		}
		q.deleteAcked()
		q.expire()
		q.mu.Unlock()
	}
}

func (q *Queue) syncLocked() error {
	if !q.dirty || q.f == nil {
		return nil
	}
	q.dirty = false
	q.m.fsyncs.Inc()
	if err := q.f.Sync(); err != nil {
		q.m.syncErrors.Inc()
		return fmt.Errorf("fsync segment: %w", err)
	}
	return nil
}

// expire drops sealed segments whose newest sample is older than MaxAge.
func (q *Queue) expire() {
	if q.opts.MaxAge <= 0 {
		return
	}
	cutoff := q.opts.Now().Add(-q.opts.MaxAge).UnixMilli()
	for len(q.segs) > 1 && q.segs[0].records > 0 && q.segs[0].maxT < cutoff {
		if err := q.drop(q.segs[0], "age"); err != nil {
			q.logger.Warn("expire segment", "err", err)
			return
		}
	}
}

// Close commits and closes the segment appended to.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	close(q.wake)
	err := q.syncLocked()
	if cerr := q.f.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close segment: %w", cerr))
	}
	return err
}
