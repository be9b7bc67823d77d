package collect

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"time"

	"github.com/tmaflow/tmaflow/pkg/ingest"
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
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;version=0.0.4;q=0.5")
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
	format, err := ingest.TextFormatOf(resp.Header.Get("Content-Type"))
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", s.URL, err)
	}
	return parseText(s.URL, format, body, now)
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
	return parseText(c.Args[0], ingest.FormatText, out, now)
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
	return parseText(f.Path, ingest.FormatText, b, now)
}

func parseText(source string, format ingest.TextFormat, body []byte, now time.Time) ([]samples.Series, error) {
	if len(body) > maxTextBytes {
		return nil, fmt.Errorf("%s: more than %d bytes", source, maxTextBytes)
	}
	series, _, _, err := ingest.ParseText(format, body, now.UnixMilli(), nil)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", source, err)
	}
	return series, nil
}
