package ruler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/tmaflow/tmaflow/pkg/registry"
)

// TenantLabel names a series' tenant (the labeler sets it).
const TenantLabel = registry.LabelTenant

// window is the in-memory TSDB head holding the last Config.Window of
// topic-metrics. It is a storage.Storage so the PromQL engine, the rules
// package and promqltest use it as is.
type window struct {
	*tsdb.Head
	db     *tsdb.DB
	dir    string
	latest *latestCache
}

// windowMmapInterval is how often the window's full chunks are moved from
// the heap to memory-mapped files.
const windowMmapInterval = 10 * time.Second

// windowChunkWriteBuffer is the write buffer of the window's chunk files.
const windowChunkWriteBuffer = 256 << 10

// newWindow opens an empty head. Samples of any series are accepted as far
// back as the window (records of different partitions interleave), each
// series in time order: the head's querier does not read an out-of-order
// part (Prometheus merges it only in tsdb.DB's querier), so a sample older
// than its series' newest is refused and counted, rather than stored where
// no rule would see it.
//
// The head is a tsdb.DB's, without WAL (the window is replayed from
// topic-metrics) and without compaction (it never becomes blocks): only the
// DB's loop moves full chunks from the heap to files in a private
// temporary directory, every windowMmapInterval. A bare head keeps every
// chunk of the window on the heap until it is truncated: at 40,000
// samples/s that was 45 MB for a 3-minute window, ~0.9 GB for the default
// hour.
func newWindow(scratch string, win int64, reg prometheus.Registerer, logger *slog.Logger) (*window, error) {
	return openWindow(scratch, win, windowMmapInterval, reg, logger)
}

func openWindow(scratch string, win int64, mmapInterval time.Duration, reg prometheus.Registerer, logger *slog.Logger) (*window, error) {
	if scratch != "" {
		if err := os.MkdirAll(scratch, 0o750); err != nil {
			return nil, fmt.Errorf("create scratch directory: %w", err)
		}
	}
	dir, err := os.MkdirTemp(scratch, "tmaflow-ruler-head-")
	if err != nil {
		return nil, fmt.Errorf("create head directory: %w", err)
	}
	opts := tsdb.DefaultOptions()
	opts.WALSegmentSize = -1
	// The head's chunk range: appends up to a window behind the newest
	// sample are in order.
	opts.MinBlockDuration = max(2*win, opts.MinBlockDuration)
	opts.MaxBlockDuration = opts.MinBlockDuration
	opts.BlockReloadInterval = mmapInterval
	// The window's chunks are written in a burst every mmapInterval and
	// never read back from the writer: 256 KiB of write buffer, not the
	// persister's 4 MiB kept on the heap for the life of the process.
	opts.HeadChunksWriteBufferSize = windowChunkWriteBuffer
	db, err := tsdb.Open(dir, logger, reg, opts, nil)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open head: %w", err), os.RemoveAll(dir))
	}
	db.DisableCompactions()
	return &window{Head: db.Head(), db: db, dir: dir, latest: newLatestCache()}, nil
}

// Appender appends to the head and, on commit, records each series'
// newest sample for the rules' instant selectors (latest.go).
func (w *window) Appender(ctx context.Context) storage.Appender {
	return &latestAppender{Appender: w.Head.Appender(ctx), latestPending: latestPending{cache: w.latest}}
}

func (w *window) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &latestAppenderV2{AppenderV2: w.Head.AppenderV2(ctx), latestPending: latestPending{cache: w.latest}}
}

// ruleQueryable is what a rule's queries read: the head, with instant
// selectors served from the newest samples where that gives the same
// result.
func (w *window) ruleQueryable(lookback time.Duration) latestQueryable {
	return latestQueryable{head: w.Head, inner: w, cache: w.latest, lookback: lookback.Milliseconds()}
}

func (w *window) Querier(mint, maxt int64) (storage.Querier, error) {
	return tsdb.NewBlockQuerier(tsdb.NewRangeHead(w.Head, mint, maxt), mint, maxt)
}

func (w *window) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return tsdb.NewBlockChunkQuerier(tsdb.NewRangeHead(w.Head, mint, maxt), mint, maxt)
}

func (w *window) StartTime() (int64, error) { return w.Head.MinTime(), nil }

// firstSample is the time of the oldest sample held, in or out of order;
// false when the window is empty.
func (w *window) firstSample() (time.Time, bool) {
	mint := min(w.Head.MinTime(), w.Head.MinOOOTime())
	if mint == math.MaxInt64 {
		return time.Time{}, false
	}
	return time.UnixMilli(mint), true
}

// truncate drops samples before mint and series left without any.
func (w *window) truncate(mint int64) error {
	if w.Head.MinTime() >= mint {
		return nil
	}
	if err := w.Head.Truncate(mint); err != nil {
		return fmt.Errorf("truncate head to %d: %w", mint, err)
	}
	w.latest.truncate(mint)
	return nil
}

func (w *window) Close() error {
	err := w.db.Close()
	if rmErr := os.RemoveAll(w.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("remove head directory: %w", rmErr))
	}
	return err
}

// tenantQueryable confines every querier to one tenant's series, at the
// storage.Querier boundary: the PromQL engine reaches series only through
// Select, so no selector of a rule, however nested, sees another tenant.
type tenantQueryable struct {
	storage.Queryable
	tenant *labels.Matcher
}

func newTenantQueryable(q storage.Queryable, tenant string) tenantQueryable {
	return tenantQueryable{Queryable: q, tenant: labels.MustNewMatcher(labels.MatchEqual, TenantLabel, tenant)}
}

func (q tenantQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	inner, err := q.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return tenantQuerier{Querier: inner, tenant: q.tenant}, nil
}

type tenantQuerier struct {
	storage.Querier
	tenant *labels.Matcher
}

// confine adds the tenant's matcher to the selector's own: a selector
// naming another tenant selects nothing.
func (q tenantQuerier) confine(ms []*labels.Matcher) []*labels.Matcher {
	return append(ms[:len(ms):len(ms)], q.tenant)
}

func (q tenantQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return q.Querier.Select(ctx, sortSeries, hints, q.confine(ms)...)
}

func (q tenantQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.Querier.LabelValues(ctx, name, hints, q.confine(ms)...)
}

func (q tenantQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.Querier.LabelNames(ctx, hints, q.confine(ms)...)
}
