package persister

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/pkg/service"
)

// Remote-write 1.0 protocol headers.
const (
	remoteWriteVersion     = "0.1.0"
	remoteWriteContentType = "application/x-protobuf"
	remoteWriteUserAgent   = "tmaflow-persister"
)

// maxErrorBody bounds how much of an error response is kept.
const maxErrorBody = 512

// maxRetryAfter bounds the Retry-After honoured, against absurd values.
const maxRetryAfter = 10 * time.Minute

// remoteWriter forwards batches to Prometheus remote-write endpoints.
type remoteWriter struct {
	urls     []string
	cfg      RemoteWriteConfig
	client   *http.Client
	auth     func(*http.Request)
	metrics  *remoteWriteMetrics
	logger   *slog.Logger
	sleep    func(context.Context, time.Duration) bool
	decoders decoderPool
}

func newRemoteWriter(cfg RemoteWriteConfig, client *http.Client, m *remoteWriteMetrics, logger *slog.Logger) (*remoteWriter, error) {
	if client == nil {
		client = &http.Client{}
	}
	w := &remoteWriter{urls: cfg.URLs, cfg: cfg, client: client, metrics: m, logger: logger, sleep: service.Sleep, auth: func(*http.Request) {}}
	switch {
	case cfg.BasicAuthUsername != "":
		pass := cfg.BasicAuthPassword
		if cfg.PasswordFile != "" {
			p, err := readSecret(cfg.PasswordFile)
			if err != nil {
				return nil, err
			}
			pass = p
		}
		user := cfg.BasicAuthUsername
		w.auth = func(r *http.Request) { r.SetBasicAuth(user, pass) }
	case cfg.BearerToken != "" || cfg.BearerTokenFile != "":
		tok := cfg.BearerToken
		if cfg.BearerTokenFile != "" {
			t, err := readSecret(cfg.BearerTokenFile)
			if err != nil {
				return nil, err
			}
			tok = t
		}
		w.auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	return w, nil
}

func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read secret %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// writeRequest builds the remote-write request of a batch, with the label
// sets the TSDB stores (tenant label included). Series the TSDB consumer
// dead-letters are left out; their count is returned.
func writeRequest(b *samples.Batch) (*prompb.WriteRequest, int) {
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, len(b.Series))}
	sb := labels.NewScratchBuilder(8)
	skipped := 0
	seen := map[string]bool{}
	for i := range b.Series {
		s := &b.Series[i]
		lset, _, err := seriesLabels(&sb, s.Labels, b.Tenant)
		if err != nil {
			skipped += len(s.Samples)
			continue
		}
		ts := prompb.TimeSeries{
			Labels:  make([]prompb.Label, 0, lset.Len()),
			Samples: make([]prompb.Sample, len(s.Samples)),
		}
		lset.Range(func(l labels.Label) { ts.Labels = append(ts.Labels, prompb.Label{Name: l.Name, Value: l.Value}) })
		for j, smp := range s.Samples {
			ts.Samples[j] = prompb.Sample{Timestamp: smp.TimestampMs, Value: smp.Value}
		}
		req.Timeseries = append(req.Timeseries, ts)
		if s.Metadata != nil {
			family := familyName(lset.Get("__name__"), s.Metadata.Type)
			if !seen[family] {
				seen[family] = true
				req.Metadata = append(req.Metadata, prompb.MetricMetadata{
					Type:             prompb.MetricMetadata_MetricType(prompb.MetricMetadata_MetricType_value[string(s.Metadata.Type)]),
					MetricFamilyName: family,
					Help:             s.Metadata.Help,
					Unit:             s.Metadata.Unit,
				})
			}
		}
	}
	return req, skipped
}

// handle sends the records of a batch to every endpoint, one request per
// tenant in the records' order. It answers nil for a record once each
// endpoint answered 2xx; a permanent error when one answered another 4xx
// (the record is dead-lettered; a request of several records that is
// refused is sent again record by record, so only the refused ones are);
// the context's error when it ended (the records come again). 5xx, 429
// and failed connections are retried with backoff for as long as it
// takes: the partition waits rather than losing data.
func (w *remoteWriter) handle(ctx context.Context, msgs []*message.Message) []error {
	var errs []error
	type tenantRequest struct {
		tenant string
		idx    []int // records in msgs
		reqs   []*prompb.WriteRequest
	}
	var byTenant []*tenantRequest
	for i, msg := range msgs {
		d := w.decoders.get()
		// The requests may share the decoder's memory until sent.
		defer w.decoders.put(d)
		b, err := d.Decode(msg.Payload)
		if err == nil && b.Tenant == "" {
			err = errNoTenant
		}
		if err != nil {
			errs = bus.Fail(errs, len(msgs), i, bus.Permanent(err))
			continue
		}
		req, skipped := writeRequest(b)
		if skipped > 0 {
			w.logger.Debug("remote write left out series with invalid labels", "samples", skipped)
		}
		k := slices.IndexFunc(byTenant, func(t *tenantRequest) bool { return t.tenant == b.Tenant })
		if k < 0 {
			k = len(byTenant)
			byTenant = append(byTenant, &tenantRequest{tenant: b.Tenant})
		}
		byTenant[k].idx = append(byTenant[k].idx, i)
		byTenant[k].reqs = append(byTenant[k].reqs, req)
	}
	for _, t := range byTenant {
		err := w.write(ctx, t.tenant, merged(t.reqs))
		if bus.IsPermanent(err) && len(t.idx) > 1 {
			// Find the refused records: the rest must not be dead-lettered.
			for j, i := range t.idx {
				errs = failIf(errs, len(msgs), i, w.write(ctx, t.tenant, t.reqs[j]))
			}
			continue
		}
		for _, i := range t.idx {
			errs = failIf(errs, len(msgs), i, err)
		}
	}
	return errs
}

// failIf is bus.Fail for a non-nil err.
func failIf(errs []error, n, i int, err error) []error {
	if err == nil {
		return errs
	}
	return bus.Fail(errs, n, i, err)
}

// merged is one request of the series and metadata of reqs.
func merged(reqs []*prompb.WriteRequest) *prompb.WriteRequest {
	if len(reqs) == 1 {
		return reqs[0]
	}
	out := &prompb.WriteRequest{}
	seen := map[string]bool{}
	for _, r := range reqs {
		out.Timeseries = append(out.Timeseries, r.Timeseries...)
		for _, m := range r.Metadata {
			if !seen[m.MetricFamilyName] {
				seen[m.MetricFamilyName] = true
				out.Metadata = append(out.Metadata, m)
			}
		}
	}
	return out
}

// write sends req to every endpoint, as handle describes.
func (w *remoteWriter) write(ctx context.Context, tenant string, req *prompb.WriteRequest) error {
	n := 0
	for _, ts := range req.Timeseries {
		n += len(ts.Samples)
	}
	if n == 0 {
		return nil
	}
	raw, err := req.Marshal()
	if err != nil {
		return bus.Permanent(fmt.Errorf("encode write request: %w", err))
	}
	body := snappy.Encode(nil, raw)
	pending := make([]string, len(w.urls))
	copy(pending, w.urls)
	backoff := w.cfg.MinBackoff
	var rejected []error
	for {
		var retry []string
		wait := time.Duration(0)
		for _, u := range pending {
			res := w.send(ctx, u, body, tenant)
			switch {
			case res.ok:
				w.metrics.samples.WithLabelValues(u, "sent").Add(float64(n))
			case res.permanent:
				w.metrics.samples.WithLabelValues(u, "rejected").Add(float64(n))
				rejected = append(rejected, res.err)
			default:
				if ctx.Err() != nil {
					return fmt.Errorf("remote write to %s: %w", u, ctx.Err())
				}
				w.metrics.retries.WithLabelValues(u).Inc()
				w.logger.Warn("remote write failed, retrying", "url", u, "err", res.err, "backoff", max(backoff, res.retryAfter))
				retry = append(retry, u)
				wait = max(wait, res.retryAfter)
			}
		}
		if len(retry) == 0 {
			break
		}
		// An endpoint's Retry-After is honoured beyond max-backoff: it
		// knows its own recovery best.
		if !w.sleep(ctx, max(backoff, min(wait, maxRetryAfter))) {
			return fmt.Errorf("remote write: %w", ctx.Err())
		}
		backoff = min(2*backoff, w.cfg.MaxBackoff)
		pending = retry
	}
	if len(rejected) > 0 {
		return bus.Permanent(errors.Join(rejected...))
	}
	return nil
}

// sendResult is the outcome of one request.
type sendResult struct {
	ok         bool
	permanent  bool // 4xx other than 429
	retryAfter time.Duration
	err        error
}

func (w *remoteWriter) send(ctx context.Context, u string, body []byte, tenant string) sendResult {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return sendResult{permanent: true, err: fmt.Errorf("remote write to %s: %w", u, err)}
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", remoteWriteContentType)
	req.Header.Set("User-Agent", remoteWriteUserAgent)
	req.Header.Set("X-Prometheus-Remote-Write-Version", remoteWriteVersion)
	if w.cfg.TenantHeader != "" {
		req.Header.Set(w.cfg.TenantHeader, tenant)
	}
	w.auth(req)
	start := time.Now()
	resp, err := w.client.Do(req)
	w.metrics.duration.WithLabelValues(u).Observe(time.Since(start).Seconds())
	if err != nil {
		w.metrics.requests.WithLabelValues(u, "error").Inc()
		return sendResult{err: fmt.Errorf("remote write to %s: %w", u, err)}
	}
	msg, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	// Drain a little more so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if cerr := resp.Body.Close(); cerr != nil && rerr == nil {
		rerr = cerr
	}
	w.metrics.requests.WithLabelValues(u, strconv.Itoa(resp.StatusCode)).Inc()
	if resp.StatusCode/100 == 2 {
		return sendResult{ok: true}
	}
	text := strings.TrimSpace(string(msg))
	if rerr != nil {
		text += " (reading body: " + rerr.Error() + ")"
	}
	err = fmt.Errorf("remote write to %s: %s: %s", u, resp.Status, text)
	if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests {
		return sendResult{permanent: true, err: err}
	}
	return sendResult{retryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now()), err: err}
}

// retryAfter parses a Retry-After header (seconds or an HTTP date).
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs >= 0 && secs < math.MaxInt32 {
		return time.Duration(secs * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
