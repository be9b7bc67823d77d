package persister

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/util/compression"

	"github.com/tmaflow/tmaflow/pkg/registry"
	"github.com/tmaflow/tmaflow/pkg/samples"
)

// TenantLabel is the label naming a series' tenant (the labeler's too).
// Every stored series carries it, equal to its batch's tenant, and every
// query is confined to the caller's value of it.
const TenantLabel = registry.LabelTenant

// Reasons a sample is not stored; the reason label of the rejected-samples
// metric and part of the error header of its dead letter.
const (
	reasonTooOld         = "too_old"             // behind the out-of-order window
	reasonOutOfBounds    = "out_of_bounds"       // older than the head accepts (no out-of-order window)
	reasonOutOfOrder     = "out_of_order"        // behind the series' newest sample (no out-of-order window)
	reasonDuplicate      = "duplicate_timestamp" // another value at a stored timestamp
	reasonInvalidLabels  = "invalid_labels"
	reasonTenantMismatch = "tenant_mismatch"
	reasonInvalid        = "invalid" // anything else the TSDB refuses
)

var rejectReasons = []string{reasonTooOld, reasonOutOfBounds, reasonOutOfOrder, reasonDuplicate, reasonInvalidLabels, reasonTenantMismatch, reasonInvalid}

// openTSDB opens (or creates) the TSDB at cfg.Path, replaying its WAL.
func openTSDB(cfg TSDBConfig, logger *slog.Logger, reg prometheus.Registerer) (*tsdb.DB, error) {
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = cfg.Retention.Milliseconds()
	opts.MaxBytes = cfg.RetentionBytes
	opts.OutOfOrderTimeWindow = cfg.OutOfOrderWindow.Milliseconds()
	if cfg.BlockDuration > 0 {
		// Compacted blocks still grow to the default's larger ranges.
		opts.MinBlockDuration = cfg.BlockDuration.Milliseconds()
		opts.MaxBlockDuration = max(opts.MaxBlockDuration, opts.MinBlockDuration)
	}
	if cfg.WALCompression {
		opts.WALCompression = compression.Snappy
	}
	db, err := tsdb.Open(cfg.Path, logger, reg, opts, nil)
	if err != nil {
		return nil, fmt.Errorf("open tsdb %s: %w", cfg.Path, err)
	}
	return db, nil
}

// appendQuerier is the part of *tsdb.DB the store uses.
type appendQuerier interface {
	Appender(ctx context.Context) storage.Appender
	Querier(mint, maxt int64) (storage.Querier, error)
}

// store appends sample batches to the TSDB. Batches appended while a
// commit runs share the next commit (group commit): under load one WAL
// write covers many records, and an idle store commits each batch at once.
type store struct {
	db appendQuerier
	// series, if set, caches the label sets and references of series.
	series *seriesCache
	// onCommit, if set, is called with the batches of every commit.
	onCommit func(batches int)

	// mu serialises appends and commits. The head re-checks every sample
	// at commit and silently drops those that concurrent commits made out
	// of order; one appender at a time, never appending during a commit,
	// makes the check at Append, whose errors are reported, the final one.
	mu         sync.Mutex
	open       *commitGroup // batches appended since the last commit
	committing bool         // a commitLoop runs
}

// commitGroup is the batches of one commit.
type commitGroup struct {
	app     storage.Appender
	batches int
	done    chan struct{} // closed after the commit; err is set then
	err     error
}

// commitLoop commits the open group until none is left. It runs while
// batches wait, so nothing outlives the last append.
func (s *store) commitLoop() {
	for {
		s.mu.Lock()
		g := s.open
		if g == nil {
			s.committing = false
			s.mu.Unlock()
			return
		}
		s.open = nil
		g.err = g.app.Commit()
		s.mu.Unlock()
		if s.onCommit != nil {
			s.onCommit(g.batches)
		}
		close(g.done)
		// Let the appenders that queued during the commit in before
		// the next one.
		runtime.Gosched()
	}
}

// appendResult is what one batch did to the TSDB.
type appendResult struct {
	appended int // accepted by the TSDB, re-deliveries of stored samples included
	stored   int // refused by the TSDB but already stored with the same value
	rejected map[string]*samples.Batch
	// reasons holds one example error message per rejection reason.
	reasons map[string]string
}

func (r *appendResult) reject(reason, msg string, b *samples.Batch, lbls []samples.Label, meta *samples.Metadata, ss ...samples.Sample) {
	if len(ss) == 0 {
		return
	}
	if r.rejected == nil {
		r.rejected = map[string]*samples.Batch{}
		r.reasons = map[string]string{}
	}
	rb, ok := r.rejected[reason]
	if !ok {
		rb = &samples.Batch{Tenant: b.Tenant, Source: b.Source}
		r.rejected[reason] = rb
		r.reasons[reason] = msg
	}
	// Consecutive rejections of one series share its entry.
	if n := len(rb.Series); n > 0 && slices.Equal(rb.Series[n-1].Labels, lbls) {
		rb.Series[n-1].Samples = append(rb.Series[n-1].Samples, ss...)
		return
	}
	rb.Series = append(rb.Series, samples.Series{Labels: lbls, Samples: slices.Clone(ss), Metadata: meta})
}

func (r *appendResult) rejectedCount() int {
	n := 0
	for _, b := range r.rejected {
		for _, s := range b.Series {
			n += len(s.Samples)
		}
	}
	return n
}

// prepared is a batch series ready to append.
type prepared struct {
	lset    labels.Labels
	src     []samples.Label // the batch's labels, for dead letters
	samples []samples.Sample
	meta    *samples.Metadata
	cached  *cachedSeries // nil without a cache
}

// prepare turns the batch's series into label sets, sorted samples and
// rejections of series whose labels cannot be stored. Series with equal
// label sets are merged, so each is appended once, in timestamp order.
// The samples stay in the batch's memory (the handler owns its decoder
// until it returns) unless a merge needs a copy.
func prepare(b *samples.Batch, res *appendResult, cache *seriesCache, encoded []string) []prepared {
	out := make([]prepared, 0, len(b.Series))
	// A batch holds a resource's series: few, and almost never two with
	// one label set, so hashes are compared in a list; a map only for
	// large batches.
	hashes := make([]uint64, 0, len(b.Series))
	var byHash map[uint64][]int
	if len(b.Series) > maxLinearMerge {
		byHash = make(map[uint64][]int, len(b.Series))
	}
	cloned := map[int]bool{}
	sl := newSeriesLabeler(b, cache, encoded)
	for i := range b.Series {
		s := &b.Series[i]
		lset, h, e, reason, err := sl.labels(i)
		if err != nil {
			res.reject(reason, err.Error(), b, s.Labels, s.Metadata, s.Samples...)
			continue
		}
		if j, ok := findSeries(out, hashes, byHash, h, lset); ok {
			if !cloned[j] {
				// Appending in place would overwrite the next series'
				// samples in the decoder's memory.
				out[j].samples = slices.Clone(out[j].samples)
				cloned[j] = true
			}
			out[j].samples = append(out[j].samples, s.Samples...)
			continue
		}
		if byHash != nil {
			byHash[h] = append(byHash[h], len(out))
		}
		hashes = append(hashes, h)
		out = append(out, prepared{lset: lset, src: s.Labels, samples: s.Samples, meta: s.Metadata, cached: e})
	}
	for i := range out {
		p := &out[i]
		// Stable, so of two samples at one timestamp the batch's first
		// wins. The head checks samples of one uncommitted series only
		// against what is committed, and drops the later of two at one
		// timestamp silently at commit: repeats are settled here.
		if !slices.IsSortedFunc(p.samples, cmpSampleTime) {
			slices.SortStableFunc(p.samples, cmpSampleTime)
		}
		if !repeatsTimestamp(p.samples) {
			continue
		}
		if !cloned[i] {
			// Compacting in place would change the batch that a retried
			// append reads again.
			p.samples = slices.Clone(p.samples)
		}
		kept := p.samples[:0]
		for _, smp := range p.samples {
			if n := len(kept); n > 0 && kept[n-1].TimestampMs == smp.TimestampMs {
				if math.Float64bits(kept[n-1].Value) == math.Float64bits(smp.Value) {
					res.stored++
					continue
				}
				res.reject(reasonDuplicate, fmt.Sprintf("batch holds two values at timestamp %d", smp.TimestampMs), b, p.src, p.meta, smp)
				continue
			}
			kept = append(kept, smp)
		}
		p.samples = kept
	}
	return out
}

// seriesLabeler gives the label sets of a batch's series: from the
// series cache when the batch's label encodings are known and the series
// is cached, else built (and then cached).
type seriesLabeler struct {
	b       *samples.Batch
	cache   *seriesCache // nil: build every label set
	encoded []string
	cached  []*cachedSeries
	keys    []uint64
	sb      labels.ScratchBuilder
}

func newSeriesLabeler(b *samples.Batch, cache *seriesCache, encoded []string) seriesLabeler {
	sl := seriesLabeler{b: b}
	if cache != nil && len(encoded) == len(b.Series) {
		sl.cache, sl.encoded = cache, encoded
		sl.cached, sl.keys = cache.lookup(b.Tenant, encoded)
	}
	return sl
}

// labels returns series i's label set, its hash and its cache entry (nil
// without a cache), or the rejection reason and error of labels that
// cannot be stored.
func (sl *seriesLabeler) labels(i int) (labels.Labels, uint64, *cachedSeries, string, error) {
	if sl.cache != nil && sl.cached[i] != nil {
		e := sl.cached[i]
		return e.lset, e.hash, e, "", nil
	}
	lset, reason, err := seriesLabels(&sl.sb, sl.b.Series[i].Labels, sl.b.Tenant)
	if err != nil {
		return labels.EmptyLabels(), 0, nil, reason, err
	}
	h := lset.Hash()
	var e *cachedSeries
	if sl.cache != nil {
		e = sl.cache.add(sl.keys[i], sl.b.Tenant, sl.encoded[i], lset, h)
	}
	return lset, h, e, "", nil
}

// maxLinearMerge is the most series prepare compares in a list.
const maxLinearMerge = 64

// findSeries returns the index in out of the series with label set lset
// and hash h.
func findSeries(out []prepared, hashes []uint64, byHash map[uint64][]int, h uint64, lset labels.Labels) (int, bool) {
	if byHash != nil {
		for _, j := range byHash[h] {
			if labels.Equal(out[j].lset, lset) {
				return j, true
			}
		}
		return 0, false
	}
	for j, oh := range hashes {
		if oh == h && labels.Equal(out[j].lset, lset) {
			return j, true
		}
	}
	return 0, false
}

// repeatsTimestamp reports whether sorted samples hold a timestamp twice.
func repeatsTimestamp(ss []samples.Sample) bool {
	for i := 1; i < len(ss); i++ {
		if ss[i].TimestampMs == ss[i-1].TimestampMs {
			return true
		}
	}
	return false
}

func cmpSampleTime(a, b samples.Sample) int { return cmp.Compare(a.TimestampMs, b.TimestampMs) }

// seriesLabels builds the label set of a series: empty values dropped (an
// empty label is an absent one in Prometheus), names checked, the tenant
// label set from the batch tenant when absent and required to equal it
// when present.
func seriesLabels(sb *labels.ScratchBuilder, in []samples.Label, tenant string) (labels.Labels, string, error) {
	sb.Reset()
	hasName, hasTenant := false, false
	for _, l := range in {
		if !model.UTF8Validation.IsValidLabelName(l.Name) {
			return labels.EmptyLabels(), reasonInvalidLabels, fmt.Errorf("invalid label name %q", l.Name)
		}
		if !utf8.ValidString(l.Value) {
			return labels.EmptyLabels(), reasonInvalidLabels, fmt.Errorf("label %s: value is not valid UTF-8", l.Name)
		}
		if l.Name == TenantLabel {
			if l.Value != tenant {
				return labels.EmptyLabels(), reasonTenantMismatch, fmt.Errorf("tenant label %q differs from the batch tenant %q", l.Value, tenant)
			}
			hasTenant = true
		}
		if l.Value == "" {
			continue
		}
		hasName = hasName || l.Name == model.MetricNameLabel
		sb.Add(l.Name, l.Value)
	}
	if !hasName {
		return labels.EmptyLabels(), reasonInvalidLabels, errors.New("series has no metric name (__name__)")
	}
	if !hasTenant {
		sb.Add(TenantLabel, tenant)
	}
	sb.Sort()
	lset := sb.Labels()
	if name, dup := lset.HasDuplicateLabelNames(); dup {
		return labels.EmptyLabels(), reasonInvalidLabels, fmt.Errorf("label name %q is not unique", name)
	}
	return lset, "", nil
}

// rejection classifies an Append error.
func rejection(err error) string {
	switch {
	case errors.Is(err, storage.ErrTooOldSample):
		return reasonTooOld
	case errors.Is(err, storage.ErrOutOfBounds):
		return reasonOutOfBounds
	case errors.Is(err, storage.ErrOutOfOrderSample):
		return reasonOutOfOrder
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		return reasonDuplicate
	default:
		return reasonInvalid
	}
}

// refusal is a sample the TSDB refused at Append.
type refusal struct {
	series *prepared
	sample samples.Sample
	reason string
	msg    string
}

// append stores batch b. The samples the TSDB accepts are committed
// together; an error means none of them may be stored and the batch must
// be appended again. Refused samples that are already stored with the same
// value (re-delivery of a batch whose samples fell behind the head since)
// count as stored; the others come back in the result.
func (s *store) append(ctx context.Context, b *samples.Batch) (appendResult, error) {
	return s.appendThen(ctx, b, nil, nil)
}

// appendThen is append calling appended, if set, once b's samples are in
// the open group, before it waits for the commit: the next batch of the
// partition may append then and share the commit. encoded, if it holds
// the encoding of each series' labels (samples.Decoder.EncodedLabels),
// finds the series in the store's cache.
func (s *store) appendThen(ctx context.Context, b *samples.Batch, encoded []string, appended func()) (appendResult, error) {
	p := s.appendAsync(ctx, b, encoded)
	if appended != nil {
		appended()
	}
	return p.wait(ctx)
}

// pendingAppend is a batch appended to the open commit group, waiting for
// its commit.
type pendingAppend struct {
	s       *store
	b       *samples.Batch
	g       *commitGroup
	res     appendResult
	refused []refusal
}

// appendAsync appends b's samples to the open commit group and returns
// at once: the batches appended before its wait share one commit.
func (s *store) appendAsync(ctx context.Context, b *samples.Batch, encoded []string) *pendingAppend {
	pa := &pendingAppend{s: s, b: b}
	series := prepare(b, &pa.res, s.series, encoded)

	s.mu.Lock()
	g := s.open
	if g == nil {
		// The group outlives this call's ctx: others share it.
		g = &commitGroup{app: s.db.Appender(context.WithoutCancel(ctx)), done: make(chan struct{})}
		s.open = g
	}
	g.batches++
	pa.g = g
	app := g.app
	for i := range series {
		p := &series[i]
		var ref storage.SeriesRef
		if p.cached != nil {
			ref = p.cached.reference()
		}
		for _, smp := range p.samples {
			r, err := app.Append(ref, p.lset, smp.TimestampMs, smp.Value)
			if err != nil {
				pa.refused = append(pa.refused, refusal{series: p, sample: smp, reason: rejection(err), msg: err.Error()})
				continue
			}
			ref = r
			pa.res.appended++
		}
		if p.cached != nil && ref != 0 {
			p.cached.setReference(ref)
		}
	}
	if !s.committing {
		s.committing = true
		go s.commitLoop()
	}
	s.mu.Unlock()
	return pa
}

// wait waits for the commit of p's group and sorts out what the TSDB
// refused: samples stored already are counted stored, the rest rejected.
func (p *pendingAppend) wait(ctx context.Context) (appendResult, error) {
	s, g, b, res, refused := p.s, p.g, p.b, p.res, p.refused
	select {
	case <-g.done:
	case <-ctx.Done():
		// The samples may still be committed: appending them again is
		// harmless.
		return appendResult{}, fmt.Errorf("commit to tsdb: %w", ctx.Err())
	}
	if g.err != nil {
		return appendResult{}, fmt.Errorf("commit to tsdb: %w", g.err)
	}
	if len(refused) == 0 {
		return res, nil
	}
	if err := s.sortOutStored(ctx, refused, &res); err != nil {
		return appendResult{}, err
	}
	for _, r := range refused {
		if r.reason != "" {
			res.reject(r.reason, r.msg, b, r.series.src, r.series.meta, r.sample)
		}
	}
	return res, nil
}

// sortOutStored clears the reason of refused samples whose exact value is
// stored already, counting them in res.stored.
func (s *store) sortOutStored(ctx context.Context, refused []refusal, res *appendResult) error {
	// Refusals come grouped by series, in timestamp order.
	for start := 0; start < len(refused); {
		end := start + 1
		for end < len(refused) && refused[end].series == refused[start].series {
			end++
		}
		group := refused[start:end]
		stored, err := s.storedValues(ctx, group[0].series.lset, group[0].sample.TimestampMs, group[len(group)-1].sample.TimestampMs)
		if err != nil {
			return err
		}
		for i := range group {
			v, ok := stored[group[i].sample.TimestampMs]
			if ok && math.Float64bits(v) == math.Float64bits(group[i].sample.Value) {
				group[i].reason = ""
				res.stored++
			}
		}
		start = end
	}
	return nil
}

// storedValues returns the samples of exactly lset between mint and maxt.
func (s *store) storedValues(ctx context.Context, lset labels.Labels, mint, maxt int64) (_ map[int64]float64, err error) {
	q, err := s.db.Querier(mint, maxt)
	if err != nil {
		return nil, fmt.Errorf("query tsdb: %w", err)
	}
	defer func() {
		if cerr := q.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close tsdb querier: %w", cerr))
		}
	}()
	ms := make([]*labels.Matcher, 0, lset.Len())
	lset.Range(func(l labels.Label) {
		ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, l.Name, l.Value))
	})
	out := map[int64]float64{}
	set := q.Select(ctx, false, nil, ms...)
	for set.Next() {
		// Equality matchers also match series with more labels.
		if !labels.Equal(set.At().Labels(), lset) {
			continue
		}
		it := set.At().Iterator(nil)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			if vt != chunkenc.ValFloat {
				continue // only floats are ever appended
			}
			t, v := it.At()
			out[t] = v
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("read tsdb series: %w", err)
		}
	}
	if err := set.Err(); err != nil {
		return nil, fmt.Errorf("select tsdb series: %w", err)
	}
	return out, nil
}
