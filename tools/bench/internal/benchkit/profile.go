package benchkit

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"time"
)

// FetchProfile saves a CPU profile of d from a Go pprof endpoint.
func FetchProfile(ctx context.Context, debugAddr string, d time.Duration, path string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", debugAddr, int(d.Seconds()))
	if err := Download(ctx, url, d+30*time.Second, path); err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	return nil
}

// Download saves what url answers (a pprof profile) in path.
func Download(ctx context.Context, url string, timeout time.Duration, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// PprofTop is `go tool pprof -top` of the profile at path of bin, with
// extra options (-nodecount=20, -sample_index=inuse_space).
func PprofTop(ctx context.Context, goBin, bin, path string, opts ...string) (string, error) {
	args := append(append([]string{"tool", "pprof", "-top"}, opts...), bin, path)
	out, err := exec.CommandContext(ctx, goBin, args...).Output()
	if err != nil {
		return "", fmt.Errorf("go tool pprof -top %s: %w", path, err)
	}
	return string(out), nil
}

// A Part is what a stack is attributed to: the first of a list of
// patterns that one of its frames matches.
type Part struct {
	Name string
	Re   *regexp.Regexp
}

// ByWork attributes a stack, from its leaf, to the innermost library or
// kind of work that spends the CPU.
var ByWork = []Part{
	{"memory allocation + GC assist", regexp.MustCompile(`^runtime\.(mallocgc|newobject|makeslice|growslice|gcAssist|memclr|rawstring|rawbyteslice|concatstring)`)},
	{"syscalls (network, disk)", regexp.MustCompile(`^(syscall|internal/runtime/syscall|runtime/internal/syscall)\.|^internal/poll\.`)},
	{"Go GC (background)", regexp.MustCompile(`^runtime\.(gcBgMarkWorker|gcDrain|scanobject|markroot|bgsweep|bgscavenge)`)},
	{"scheduler, timers, channels", regexp.MustCompile(`^runtime\.(schedule|findRunnable|park_m|futex|notesleep|chansend|chanrecv|selectgo|netpoll|stealWork|runqgrab|usleep|mcall|lock2|unlock2)`)},
	{"TSDB (append, commit, WAL)", regexp.MustCompile(`prometheus/prometheus/tsdb`)},
	{"Prometheus labels", regexp.MustCompile(`prometheus/prometheus/model/labels`)},
	{"Avro codec (pkg/samples)", regexp.MustCompile(`tmaflow/pkg/samples`)},
	{"TMA JSON decode (pkg/tma)", regexp.MustCompile(`tmaflow/pkg/tma`)},
	{"embedded broker (kfake)", regexp.MustCompile(`franz-go/pkg/kfake|franz-go/pkg/kmsg|tmaflow/pkg/broker`)},
	{"embedded NATS server (nats-server)", regexp.MustCompile(`nats-io/nats-server`)},
	{"nats.go client", regexp.MustCompile(`nats-io/nats\.go|tmaflow/pkg/bus/nats`)},
	{"kafka-go client", regexp.MustCompile(`segmentio/kafka-go|tmaflow/pkg/bus`)},
	{"compression (kafka, WAL)", regexp.MustCompile(`klauspost/compress|golang/snappy|pierrec/lz4`)},
	{"watermill", regexp.MustCompile(`ThreeDotsLabs/watermill`)},
	{"metrics (client_golang)", regexp.MustCompile(`prometheus/client_golang`)},
	{"net/http", regexp.MustCompile(`^net/http\.|^net/textproto|^bufio\.`)},
	{"labeler", regexp.MustCompile(`services/labeler`)},
	{"persister", regexp.MustCompile(`services/persister`)},
	{"monitor", regexp.MustCompile(`services/monitor`)},
	{"crypto (auth cache key)", regexp.MustCompile(`^crypto/`)},
	{"PromQL engine", regexp.MustCompile(`prometheus/prometheus/promql`)},
	{"Prometheus rules package", regexp.MustCompile(`prometheus/prometheus/rules`)},
	{"ruler", regexp.MustCompile(`services/ruler`)},
}

// Share is a part's CPU in a profile.
type Share struct {
	Name string
	CPU  time.Duration
}

// ProfileSummary is the attribution of a CPU profile.
type ProfileSummary struct {
	Run             string
	Total           time.Duration
	Wall            time.Duration
	Services, Works []Share
	Top             string // go tool pprof -top
}

// Summarise reads a CPU profile with `go tool pprof` and attributes its
// samples to services (by priority) and to work (by the leaf).
func Summarise(ctx context.Context, goBin, bin, path string, wall time.Duration, services, works []Part) (ProfileSummary, error) {
	out, err := exec.CommandContext(ctx, goBin, "tool", "pprof", "-traces", bin, path).Output()
	if err != nil {
		return ProfileSummary{}, fmt.Errorf("go tool pprof -traces %s: %w", path, err)
	}
	stacks, err := ParseTraces(string(out))
	if err != nil {
		return ProfileSummary{}, err
	}
	s := ProfileSummary{Wall: wall}
	svc, work := map[string]time.Duration{}, map[string]time.Duration{}
	for _, st := range stacks {
		s.Total += st.CPU
		svc[Attribute(st.Frames, services, true, "other (runtime, std)")] += st.CPU
		work[Attribute(st.Frames, works, false, "other (runtime, std)")] += st.CPU
	}
	s.Services, s.Works = sorted(svc), sorted(work)
	if s.Top, err = PprofTop(ctx, goBin, bin, path, "-nodecount=20"); err != nil {
		return ProfileSummary{}, err
	}
	return s, nil
}

func sorted(m map[string]time.Duration) []Share {
	out := make([]Share, 0, len(m))
	for k, v := range m {
		out = append(out, Share{k, v})
	}
	slices.SortFunc(out, func(a, b Share) int {
		if a.CPU != b.CPU {
			return int(b.CPU - a.CPU)
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// Stack is one sampled call stack, leaf first.
type Stack struct {
	CPU    time.Duration
	Frames []string
}

// ParseTraces reads `go tool pprof -traces`: blocks separated by dashed
// lines, the first line of each holding the sample value and the leaf.
func ParseTraces(text string) ([]Stack, error) {
	var out []Stack
	var cur *Stack
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "-----------+"):
			cur = nil
		case cur == nil && strings.HasPrefix(line, " ") && strings.TrimSpace(line) != "":
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			d, err := time.ParseDuration(f[0])
			if err != nil {
				continue // a label line ("bucket: …") or the header
			}
			out = append(out, Stack{CPU: d, Frames: []string{f[1]}})
			cur = &out[len(out)-1]
		case cur != nil && strings.TrimSpace(line) != "":
			cur.Frames = append(cur.Frames, strings.Fields(line)[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read pprof traces: %w", err)
	}
	return out, nil
}

// Attribute names the part a stack belongs to. By priority: the first
// part of the list that any frame matches (a service owns every stack
// that passes through it, whatever it calls). Otherwise by the leaf: the
// innermost frame that matches a part.
func Attribute(frames []string, parts []Part, byPriority bool, none string) string {
	if byPriority {
		for _, p := range parts {
			for _, f := range frames {
				if p.Re.MatchString(f) {
					return p.Name
				}
			}
		}
		return none
	}
	for _, f := range frames {
		for _, p := range parts {
			if p.Re.MatchString(f) {
				return p.Name
			}
		}
	}
	return none
}

// PrintProfile prints a summary: shares by service and by work, and the
// top functions.
func PrintProfile(out io.Writer, p *ProfileSummary) {
	_, _ = fmt.Fprintf(out, "\n== tmaflow CPU profile during %q: %.1fs of CPU in %.0fs (%.2f cores) ==\n",
		p.Run, p.Total.Seconds(), p.Wall.Seconds(), p.Total.Seconds()/p.Wall.Seconds())
	for _, sec := range []struct {
		title  string
		shares []Share
	}{{"by service (the goroutine's owner)", p.Services}, {"by work (innermost library)", p.Works}} {
		_, _ = fmt.Fprintf(out, "%s:\n", sec.title)
		for _, s := range sec.shares {
			_, _ = fmt.Fprintf(out, "  %5.1f%%  %s\n", 100*s.CPU.Seconds()/p.Total.Seconds(), s.Name)
		}
	}
	_, _ = fmt.Fprintf(out, "top functions (flat):\n%s", Indent(p.Top))
}

// Indent indents every line of s by two spaces.
func Indent(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n") + "\n"
}
