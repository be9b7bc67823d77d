package soak

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
)

// flagLine is a flag's line in Go's flag usage: two spaces, the flag.
var flagLine = regexp.MustCompile(`^  -([A-Za-z0-9][A-Za-z0-9._-]*)`)

// ParseFlagNames lists the flags a `-h` usage text documents.
func ParseFlagNames(usage string) map[string]bool {
	out := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(usage))
	for sc.Scan() {
		if m := flagLine.FindStringSubmatch(sc.Text()); m != nil {
			out[m[1]] = true
		}
	}
	return out
}

// tmaflowFlags lists the flags bin takes, from its -h.
func tmaflowFlags(ctx context.Context, bin string) (map[string]bool, error) {
	out, err := exec.CommandContext(ctx, bin, "-h").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s -h: %w", bin, err)
	}
	return ParseFlagNames(string(out)), nil
}

// Setting is a flag and its value.
type Setting struct{ Flag, Value string }

// compression is the time-compressed retention as tmaflow flags: the
// broker's retention (every topic, and the stream topics where the
// binary has -broker.stream-retention), its check, its segment size (the
// unit retention deletes), the ruler's in-memory window and the TSDB's
// block duration.
func (c *Config) compression() []Setting {
	out := []Setting{
		{"broker.retention", c.Retention.String()},
		{"broker.stream-retention", c.Retention.String()},
		{"broker.retention-check-interval", c.RetentionCheck.String()},
		{"ruler.window", c.Retention.String()},
		{"ruler.truncate-interval", c.RetentionCheck.String()},
	}
	if c.TSDBBlock > 0 {
		out = append(out, Setting{"persister.tsdb.block-duration", c.TSDBBlock.String()})
	}
	if c.SegmentBytes > 0 {
		out = append(out, Setting{"broker.segment-bytes", fmt.Sprint(c.SegmentBytes)})
	}
	return out
}

// Supported splits settings into the flags known (as -flag=value) and
// the names of those unknown to a binary.
func Supported(settings []Setting, known map[string]bool) (args, unknown []string) {
	for _, s := range settings {
		if known[s.Flag] {
			args = append(args, "-"+s.Flag+"="+s.Value)
		} else {
			unknown = append(unknown, s.Flag)
		}
	}
	return args, unknown
}
