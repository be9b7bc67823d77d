package benchkit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/procfs"
)

// Process is a child process the benchmark measures from outside: its RSS
// and CPU are its own, not the load generator's.
type Process struct {
	name string
	cmd  *exec.Cmd
	done chan error
	log  *os.File
}

// StartProcess starts bin with args, its output in logPath.
func StartProcess(name, bin string, args []string, logPath string) (*Process, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return nil, errors.Join(fmt.Errorf("start %s: %w", name, err), f.Close())
	}
	p := &Process{name: name, cmd: cmd, done: make(chan error, 1), log: f}
	go func() { p.done <- cmd.Wait() }()
	return p, nil
}

func (p *Process) PID() int { return p.cmd.Process.Pid }

// Exited reports an early exit while waiting for readiness.
func (p *Process) Exited() error {
	select {
	case err := <-p.done:
		p.done <- err
		return fmt.Errorf("%s exited: %v (log %s)", p.name, err, p.log.Name())
	default:
		return nil
	}
}

// Stop sends SIGTERM and waits for the process to end (SIGKILL after
// timeout). A clean exit on SIGTERM is no error.
func (p *Process) Stop(timeout time.Duration) error {
	if p == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM) // already gone: Wait below says so
	var err error
	select {
	case err = <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		err = fmt.Errorf("%s did not stop within %s: %w", p.name, timeout, <-p.done)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.Exited() && ee.ExitCode() == 0 {
		err = nil
	}
	return errors.Join(err, p.log.Close())
}

// Usage is a process's resident memory and CPU time so far. RSSFile is
// the part of RSS backed by files (memory-mapped TSDB chunks and blocks,
// the binary): pages the kernel can drop and read again.
type Usage struct {
	RSS, RSSFile int64
	CPU          time.Duration
}

func (p *Process) Usage() (Usage, error) {
	proc, err := procfs.NewProc(p.PID())
	if err != nil {
		return Usage{}, fmt.Errorf("%s proc: %w", p.name, err)
	}
	st, err := proc.Stat()
	if err != nil {
		return Usage{}, fmt.Errorf("%s stat: %w", p.name, err)
	}
	status, err := proc.NewStatus()
	if err != nil {
		return Usage{}, fmt.Errorf("%s status: %w", p.name, err)
	}
	return Usage{RSS: int64(st.ResidentMemory()), RSSFile: int64(status.RssFile), CPU: time.Duration(st.CPUTime() * float64(time.Second))}, nil
}

// FreePorts returns n distinct free TCP ports on 127.0.0.1. They are
// released before the child binds them; on a quiet machine nothing takes
// them meanwhile.
func FreePorts(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	out := make([]string, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// WaitReady polls url until it answers 200 or the process exits.
func WaitReady(ctx context.Context, p *Process, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := p.Exited(); err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("readiness %s: %w", url, err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready at %s after %s (log %s)", p.name, url, timeout, p.log.Name())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Scrape reads the sum over all series of each named metric (counters
// and gauges) from a /metrics endpoint.
func Scrape(ctx context.Context, client *http.Client, url string, names ...string) (map[string]float64, error) {
	return ScrapeMatching(ctx, client, url, nil, names...)
}

// ScrapeMatching is Scrape summing only the series match accepts (nil:
// all).
func ScrapeMatching(ctx context.Context, client *http.Client, url string, match func(*dto.Metric) bool, names ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	// Plain text format, which both Prometheus 2.42 and client_golang serve.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: status %d", url, resp.StatusCode)
	}
	return sumMetrics(resp.Body, match, names...)
}

// SumMetrics parses the text exposition format and sums every series of
// the named metrics; a histogram gives <name>_sum and <name>_count. A
// metric not exposed is absent from the result.
func SumMetrics(r io.Reader, names ...string) (map[string]float64, error) {
	return sumMetrics(r, nil, names...)
}

func sumMetrics(r io.Reader, match func(*dto.Metric) bool, names ...string) (map[string]float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	out := make(map[string]float64, len(names))
	for _, n := range names {
		f, ok := fams[n]
		if !ok {
			continue
		}
		sum, hsum, hcount := 0.0, 0.0, 0.0
		for _, m := range f.GetMetric() {
			if match != nil && !match(m) {
				continue
			}
			switch {
			case m.GetHistogram() != nil:
				hsum += m.GetHistogram().GetSampleSum()
				hcount += float64(m.GetHistogram().GetSampleCount())
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetUntyped() != nil:
				sum += m.GetUntyped().GetValue()
			}
		}
		if f.GetType() == dto.MetricType_HISTOGRAM {
			out[n+"_sum"], out[n+"_count"] = hsum, hcount
			continue
		}
		out[n] = sum
	}
	return out, nil
}

// BuildTmaflow compiles the tmaflow binary from the module at src into dir.
func BuildTmaflow(ctx context.Context, goBin, src, dir string) (string, error) {
	bin := filepath.Join(dir, "tmaflow")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, ".")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build tmaflow in %s: %w: %s", src, err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}
