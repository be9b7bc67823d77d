package probebench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tmaflow/tmaflow/tools/bench/internal/benchkit"
)

// Footprint is what one setup cost over a run.
type Footprint struct {
	Name          string
	BinaryBytes   int64
	RSSSteadyMB   float64 // median after the warm-up
	RSSPeakMB     float64
	CPUPercent    float64 // of one core, averaged over the run
	Samples       int64   // received
	Series        int     // distinct series received
	SamplesPerSec float64
}

// Result is the benchmark's outcome.
type Result struct {
	Probe, Stack Footprint // side by side, 1 s sampling
	Fast         Footprint // the probe alone, 100 ms
}

// Run runs the benchmark and writes its report to out.
func Run(ctx context.Context, cfg Config, out io.Writer) (res Result, err error) {
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	dir := cfg.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "tmaprobe-"); err != nil {
			return res, err
		}
		defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	}
	ne, err := exec.LookPath(cfg.NodeExporter)
	if err != nil {
		return res, fmt.Errorf("node exporter: %w (apt-get install prometheus-node-exporter)", err)
	}
	prom, err := exec.LookPath(cfg.Prometheus)
	if err != nil {
		return res, fmt.Errorf("prometheus: %w (apt-get install prometheus)", err)
	}
	probe := filepath.Join(dir, "probe")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", probe, ".")
	build.Dir = cfg.ProbeSrc
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if b, err := build.CombinedOutput(); err != nil {
		return res, fmt.Errorf("build probe: %w: %s", err, strings.TrimSpace(string(b)))
	}
	rcv, err := startReceiver()
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, rcv.close()) }()

	fmt.Fprintf(out, "side by side for %s: host metrics every 1 s by remote_write\n", cfg.Duration)
	res.Probe, res.Stack, err = sideBySide(ctx, cfg, dir, probe, ne, prom, rcv)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(out, "the probe alone for %s: host metrics every 100 ms\n", cfg.FastDuration)
	res.Fast, err = fast(ctx, cfg, dir, probe, rcv)
	if err != nil {
		return res, err
	}
	report(out, res)
	return res, nil
}

func sideBySide(ctx context.Context, cfg Config, dir, probe, ne, prom string, rcv *receiver) (p, s Footprint, err error) {
	ports, err := benchkit.FreePorts(3)
	if err != nil {
		return p, s, err
	}
	probeAddr, neAddr, promAddr := ports[0], ports[1], ports[2]
	probeProc, err := startProbe(ctx, dir, "probe-1s", probe, probeAddr, "1s", rcv.url("probe"), 0)
	if err != nil {
		return p, s, err
	}
	defer func() { err = errors.Join(err, stop(probeProc)) }()
	neProc, err := benchkit.StartProcess("node-exporter", ne, []string{"--web.listen-address=" + neAddr}, filepath.Join(dir, "node-exporter.log"))
	if err != nil {
		return p, s, err
	}
	defer func() { err = errors.Join(err, stop(neProc)) }()
	if err := benchkit.WaitReady(ctx, neProc, "http://"+neAddr+"/metrics", time.Minute); err != nil {
		return p, s, err
	}
	promCfg := filepath.Join(dir, "agent.yml")
	if err := os.WriteFile(promCfg, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: node
    static_configs: [{targets: ['%s']}]
remote_write:
  - url: %s
`, neAddr, rcv.url("stack"))), 0o644); err != nil {
		return p, s, err
	}
	promProc, err := benchkit.StartProcess("prometheus-agent", prom, []string{
		"--enable-feature=agent", "--config.file=" + promCfg, "--storage.agent.path=" + filepath.Join(dir, "agent-data"),
		"--web.listen-address=" + promAddr, "--log.level=warn",
	}, filepath.Join(dir, "prometheus-agent.log"))
	if err != nil {
		return p, s, err
	}
	defer func() { err = errors.Join(err, stop(promProc)) }()
	if err := benchkit.WaitReady(ctx, promProc, "http://"+promAddr+"/-/ready", time.Minute); err != nil {
		return p, s, err
	}
	fps, err := measure(ctx, cfg.Duration, cfg.Warmup, rcv, []group{
		{name: "probe", sender: "probe", procs: []*benchkit.Process{probeProc}, bins: []string{probe}},
		{name: "node_exporter + prometheus agent", sender: "stack", procs: []*benchkit.Process{neProc, promProc}, bins: []string{ne, prom}},
	})
	if err != nil {
		return p, s, err
	}
	return fps[0], fps[1], nil
}

func fast(ctx context.Context, cfg Config, dir, probe string, rcv *receiver) (f Footprint, err error) {
	ports, err := benchkit.FreePorts(1)
	if err != nil {
		return f, err
	}
	proc, err := startProbe(ctx, dir, "probe-100ms", probe, ports[0], "100ms", rcv.url("fast"), cfg.ExtraSeries)
	if err != nil {
		return f, err
	}
	defer func() { err = errors.Join(err, stop(proc)) }()
	fps, err := measure(ctx, cfg.FastDuration, cfg.Warmup, rcv, []group{{name: "probe at 100 ms", sender: "fast", procs: []*benchkit.Process{proc}, bins: []string{probe}}})
	if err != nil {
		return f, err
	}
	return fps[0], nil
}

// startProbe runs the probe sampling the host every interval and, when
// extra > 0, as many series of a text file.
func startProbe(ctx context.Context, dir, name, bin, addr, interval, url string, extra int) (*benchkit.Process, error) {
	collectors := fmt.Sprintf("  - {name: host, type: host, interval: %s}\n", interval)
	if extra > 0 {
		textfile := filepath.Join(dir, name+".prom")
		var b strings.Builder
		for i := range extra {
			fmt.Fprintf(&b, "bench_extra{i=\"%d\"} %d\n", i, i)
		}
		if err := os.WriteFile(textfile, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
		collectors += fmt.Sprintf("  - {name: extra, type: file, path: %q, interval: %s}\n", textfile, interval)
	}
	cfgPath := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`labels: {instance: bench, job: node}
collectors:
%soutputs:
  - name: central
    type: remote_write
    remote_write: {url: %q}
`, collectors, url)), 0o644); err != nil {
		return nil, err
	}
	p, err := benchkit.StartProcess(name, bin, []string{
		"-config.file=" + cfgPath, "-queue.dir=" + filepath.Join(dir, name+"-queue"), "-listen-address=" + addr, "-log.level=warn",
	}, filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	if err := benchkit.WaitReady(ctx, p, "http://"+addr+"/-/ready", time.Minute); err != nil {
		return nil, errors.Join(err, p.Stop(10*time.Second))
	}
	return p, nil
}

// group is one setup: its processes are summed.
type group struct {
	name, sender string
	procs        []*benchkit.Process
	bins         []string
}

// measure samples every group's RSS each second for d and returns their
// footprints.
func measure(ctx context.Context, d, warmup time.Duration, rcv *receiver, groups []group) ([]Footprint, error) {
	type state struct {
		cpu0     time.Duration
		samples0 int64
		rss      []float64
		peak     float64
	}
	st := make([]state, len(groups))
	usage := func(g group) (benchkit.Usage, error) {
		var sum benchkit.Usage
		for _, p := range g.procs {
			u, err := p.Usage()
			if err != nil {
				return sum, err
			}
			sum.RSS += u.RSS
			sum.CPU += u.CPU
		}
		return sum, nil
	}
	for i, g := range groups {
		u, err := usage(g)
		if err != nil {
			return nil, err
		}
		st[i].cpu0 = u.CPU
		st[i].samples0, _ = rcv.counts(g.sender)
	}
	start := time.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for time.Since(start) < d {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
		for i, g := range groups {
			u, err := usage(g)
			if err != nil {
				return nil, err
			}
			mb := float64(u.RSS) / (1 << 20)
			st[i].peak = max(st[i].peak, mb)
			if time.Since(start) >= warmup {
				st[i].rss = append(st[i].rss, mb)
			}
		}
	}
	wall := time.Since(start)
	out := make([]Footprint, len(groups))
	for i, g := range groups {
		u, err := usage(g)
		if err != nil {
			return nil, err
		}
		samples, series := rcv.counts(g.sender)
		f := Footprint{
			Name: g.name, RSSPeakMB: st[i].peak, RSSSteadyMB: median(st[i].rss),
			CPUPercent: 100 * (u.CPU - st[i].cpu0).Seconds() / wall.Seconds(),
			Samples:    samples - st[i].samples0, Series: series,
		}
		f.SamplesPerSec = float64(f.Samples) / wall.Seconds()
		for _, b := range g.bins {
			fi, err := os.Stat(b)
			if err != nil {
				return nil, err
			}
			f.BinaryBytes += fi.Size()
		}
		out[i] = f
	}
	return out, nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func report(out io.Writer, r Result) {
	fmt.Fprintf(out, "\n%-34s %10s %10s %10s %8s %8s %12s\n", "setup", "binary MB", "RSS MB", "peak MB", "CPU %", "series", "samples/s")
	for _, f := range []Footprint{r.Probe, r.Stack, r.Fast} {
		fmt.Fprintf(out, "%-34s %10.1f %10.1f %10.1f %8.2f %8d %12.0f\n", f.Name, float64(f.BinaryBytes)/(1<<20), f.RSSSteadyMB, f.RSSPeakMB, f.CPUPercent, f.Series, f.SamplesPerSec)
	}
	if r.Stack.RSSSteadyMB > 0 && r.Probe.RSSSteadyMB > 0 {
		fmt.Fprintf(out, "\nprobe / (node_exporter + agent): RSS %.2f×, CPU %.2f×, binary %.2f×\n",
			r.Probe.RSSSteadyMB/r.Stack.RSSSteadyMB, r.Probe.CPUPercent/r.Stack.CPUPercent, float64(r.Probe.BinaryBytes)/float64(r.Stack.BinaryBytes))
	}
}

// stop ends p with SIGTERM. node_exporter does not handle SIGTERM and
// dies of it: for a benchmark that is a clean end too.
func stop(p *benchkit.Process) error {
	err := p.Stop(30 * time.Second)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	return err
}
