package collect

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// maxTextBytes bounds what one scrape, command or file may return.
const maxTextBytes = 16 << 20

// Scrape reads a Prometheus text or OpenMetrics endpoint; samples
// without their own timestamp get the sampling time.
type Scrape struct {
	URL     string
	Client  *http.Client
	Timeout time.Duration
}

// Collect scrapes once.
func (s Scrape) Collect(ctx context.Context, now time.Time) ([]samples.Series, error) {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", s.URL, err)
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", s.URL, err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTextBytes+1))
	if cerr := resp.Body.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", s.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %s", s.URL, resp.Status)
	}
	return parseText(s.URL, body, now)
}

// Command runs a program that prints the Prometheus text format.
type Command struct {
	Args    []string
	Timeout time.Duration
}

// Collect runs the command once.
func (c Command) Collect(ctx context.Context, now time.Time) ([]samples.Series, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Args[0], c.Args[1:]...)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", c.Args[0], err)
	}
	return parseText(c.Args[0], out, now)
}

// File reads a file in the Prometheus text format (node_exporter's
// textfile convention: written elsewhere, renamed into place).
type File struct {
	Path string
}

// Collect reads the file once.
func (f File) Collect(_ context.Context, now time.Time) ([]samples.Series, error) {
	b, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Path, err)
	}
	return parseText(f.Path, b, now)
}

// parseText parses the Prometheus text format 0.0.4 with expfmt, not
// pkg/ingest's ParseText: that one's Prometheus parsers link gogo
// protobuf and 1.5 MB the edge binary has no room for. Samples without a
// timestamp get now.
func parseText(source string, body []byte, now time.Time) ([]samples.Series, error) {
	if len(body) > maxTextBytes {
		return nil, fmt.Errorf("%s: more than %d bytes", source, maxTextBytes)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", source, err)
	}
	vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.TimeFromUnixNano(now.UnixNano())}, mapValues(fams)...)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", source, err)
	}
	series := make([]samples.Series, 0, len(vec))
	for _, smp := range vec {
		ls := make([]samples.Label, 0, len(smp.Metric))
		for k, v := range smp.Metric {
			ls = append(ls, samples.Label{Name: string(k), Value: string(v)})
		}
		SortLabels(ls)
		series = append(series, samples.Series{Labels: ls, Samples: []samples.Sample{{TimestampMs: int64(smp.Timestamp), Value: float64(smp.Value)}}})
	}
	return series, nil
}

func mapValues(m map[string]*dto.MetricFamily) []*dto.MetricFamily {
	out := make([]*dto.MetricFamily, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[name])
	}
	return out
}
