package pipebench

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

// fetchProfile saves a CPU profile of d from a Go pprof endpoint.
func fetchProfile(ctx context.Context, debugAddr string, d time.Duration, path string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", debugAddr, int(d.Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	resp, err := (&http.Client{Timeout: d + 30*time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cpu profile: status %d", resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return fmt.Errorf("write cpu profile %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write cpu profile %s: %w", path, err)
	}
	return nil
}

// A part is what a stack is attributed to: the first of a list of
// patterns that one of its frames matches.
type part struct {
	name string
	re   *regexp.Regexp
}

// byService attributes a stack to the service (or background activity)
// that runs it, by priority.
var byService = []part{
	{"monitor (HTTP ingest)", regexp.MustCompile(`services/monitor|net/http\.\(\*conn\)\.serve`)},
	{"labeler", regexp.MustCompile(`services/labeler`)},
	{"persister", regexp.MustCompile(`services/persister`)},
	{"embedded broker (kfake)", regexp.MustCompile(`franz-go/pkg/kfake|tmaflow/pkg/broker`)},
	{"kafka clients (kafka-go: produce, fetch)", regexp.MustCompile(`segmentio/kafka-go|tmaflow/pkg/bus`)},
	{"watermill router", regexp.MustCompile(`ThreeDotsLabs/watermill`)},
	{"TSDB background (head GC, compaction, WAL)", regexp.MustCompile(`prometheus/prometheus/tsdb`)},
	{"Go GC", regexp.MustCompile(`runtime\.gcBgMarkWorker|runtime\.bgsweep|runtime\.bgscavenge`)},
}

// byWork attributes a stack, from its leaf, to the innermost library or
// kind of work that spends the CPU.
var byWork = []part{
	{"memory allocation + GC assist", regexp.MustCompile(`^runtime\.(mallocgc|newobject|makeslice|growslice|gcAssist|memclr|rawstring|rawbyteslice|concatstring)`)},
	{"syscalls (network, disk)", regexp.MustCompile(`^(syscall|internal/runtime/syscall|runtime/internal/syscall)\.|^internal/poll\.`)},
	{"Go GC (background)", regexp.MustCompile(`^runtime\.(gcBgMarkWorker|gcDrain|scanobject|markroot|bgsweep|bgscavenge)`)},
	{"scheduler, timers, channels", regexp.MustCompile(`^runtime\.(schedule|findRunnable|park_m|futex|notesleep|chansend|chanrecv|selectgo|netpoll|stealWork|runqgrab|usleep|mcall|lock2|unlock2)`)},
	{"TSDB (append, commit, WAL)", regexp.MustCompile(`prometheus/prometheus/tsdb`)},
	{"Prometheus labels", regexp.MustCompile(`prometheus/prometheus/model/labels`)},
	{"Avro codec (pkg/samples)", regexp.MustCompile(`tmaflow/pkg/samples`)},
	{"TMA JSON decode (pkg/tma)", regexp.MustCompile(`tmaflow/pkg/tma`)},
	{"embedded broker (kfake)", regexp.MustCompile(`franz-go/pkg/kfake|franz-go/pkg/kmsg|tmaflow/pkg/broker`)},
	{"kafka-go client", regexp.MustCompile(`segmentio/kafka-go|tmaflow/pkg/bus`)},
	{"compression (kafka, WAL)", regexp.MustCompile(`klauspost/compress|golang/snappy|pierrec/lz4`)},
	{"watermill", regexp.MustCompile(`ThreeDotsLabs/watermill`)},
	{"metrics (client_golang)", regexp.MustCompile(`prometheus/client_golang`)},
	{"net/http", regexp.MustCompile(`^net/http\.|^net/textproto|^bufio\.`)},
	{"labeler", regexp.MustCompile(`services/labeler`)},
	{"persister", regexp.MustCompile(`services/persister`)},
	{"monitor", regexp.MustCompile(`services/monitor`)},
	{"crypto (auth cache key)", regexp.MustCompile(`^crypto/`)},
}

// share is a part's CPU in a profile.
type share struct {
	name string
	cpu  time.Duration
}

// profileSummary is the attribution of a CPU profile.
type profileSummary struct {
	run             string
	total           time.Duration
	wall            time.Duration
	services, works []share
	top             string // go tool pprof -top
}

// summarise reads a CPU profile with `go tool pprof` and attributes its
// samples.
func summarise(ctx context.Context, goBin, bin, path string, wall time.Duration) (profileSummary, error) {
	out, err := exec.CommandContext(ctx, goBin, "tool", "pprof", "-traces", bin, path).Output()
	if err != nil {
		return profileSummary{}, fmt.Errorf("go tool pprof -traces %s: %w", path, err)
	}
	stacks, err := parseTraces(string(out))
	if err != nil {
		return profileSummary{}, err
	}
	s := profileSummary{wall: wall}
	svc, work := map[string]time.Duration{}, map[string]time.Duration{}
	for _, st := range stacks {
		s.total += st.cpu
		svc[attribute(st.frames, byService, true, "other (runtime, std)")] += st.cpu
		work[attribute(st.frames, byWork, false, "other (runtime, std)")] += st.cpu
	}
	s.services, s.works = sorted(svc), sorted(work)
	top, err := exec.CommandContext(ctx, goBin, "tool", "pprof", "-top", "-nodecount=20", bin, path).Output()
	if err != nil {
		return profileSummary{}, fmt.Errorf("go tool pprof -top %s: %w", path, err)
	}
	s.top = string(top)
	return s, nil
}

func sorted(m map[string]time.Duration) []share {
	out := make([]share, 0, len(m))
	for k, v := range m {
		out = append(out, share{k, v})
	}
	slices.SortFunc(out, func(a, b share) int {
		if a.cpu != b.cpu {
			return int(b.cpu - a.cpu)
		}
		return strings.Compare(a.name, b.name)
	})
	return out
}

// stack is one sampled call stack, leaf first.
type stack struct {
	cpu    time.Duration
	frames []string
}

// parseTraces reads `go tool pprof -traces`: blocks separated by dashed
// lines, the first line of each holding the sample value and the leaf.
func parseTraces(text string) ([]stack, error) {
	var out []stack
	var cur *stack
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
			out = append(out, stack{cpu: d, frames: []string{f[1]}})
			cur = &out[len(out)-1]
		case cur != nil && strings.TrimSpace(line) != "":
			cur.frames = append(cur.frames, strings.Fields(line)[0])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read pprof traces: %w", err)
	}
	return out, nil
}

// attribute names the part a stack belongs to. By priority: the first
// part of the list that any frame matches (a service owns every stack
// that passes through it, whatever it calls). Otherwise by the leaf: the
// innermost frame that matches a part.
func attribute(frames []string, parts []part, byPriority bool, none string) string {
	if byPriority {
		for _, p := range parts {
			for _, f := range frames {
				if p.re.MatchString(f) {
					return p.name
				}
			}
		}
		return none
	}
	for _, f := range frames {
		for _, p := range parts {
			if p.re.MatchString(f) {
				return p.name
			}
		}
	}
	return none
}
