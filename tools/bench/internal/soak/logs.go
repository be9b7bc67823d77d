package soak

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
)

// LogSummary is what tmaflow logged at WARN and ERROR: a budget that
// forces retention or refuses ingest says so there.
type LogSummary struct {
	Lines, Warnings, Errors int
	// Messages counts each distinct msg of a warning or error.
	Messages map[string]int
}

// SummariseLog reads a logfmt log.
func SummariseLog(r io.Reader) (LogSummary, error) {
	s := LogSummary{Messages: map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		s.Lines++
		switch logField(line, "level") {
		case "WARN":
			s.Warnings++
		case "ERROR":
			s.Errors++
		default:
			continue
		}
		s.Messages[logField(line, "msg")]++
	}
	if err := sc.Err(); err != nil {
		return LogSummary{}, fmt.Errorf("read log: %w", err)
	}
	return s, nil
}

// logField is the value of key in a logfmt line ("" if absent).
func logField(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		if !strings.HasPrefix(line, key+"=") {
			return ""
		}
		i = -1
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		if q, err := strconv.QuotedPrefix(v); err == nil {
			if u, err := strconv.Unquote(q); err == nil {
				return u
			}
		}
	}
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

// Top is the n most frequent messages, most first.
func (s LogSummary) Top(n int) []string {
	msgs := slices.SortedFunc(maps.Keys(s.Messages), func(a, b string) int {
		return cmp.Or(cmp.Compare(s.Messages[b], s.Messages[a]), strings.Compare(a, b))
	})
	out := make([]string, 0, min(n, len(msgs)))
	for _, m := range msgs[:min(n, len(msgs))] {
		out = append(out, fmt.Sprintf("%d× %s", s.Messages[m], m))
	}
	return out
}

func summariseLogFile(path string) (LogSummary, error) {
	f, err := os.Open(path)
	if err != nil {
		return LogSummary{}, err
	}
	defer func() { _ = f.Close() }()
	return SummariseLog(f)
}
