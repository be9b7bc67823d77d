package queue

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// span is the half-open range of record sequence numbers [from, to).
type span struct{ from, to uint64 }

// ackSet is what one output has acknowledged: sorted, disjoint, merged
// spans. Live data is sent ahead of a backlog, so it may have holes.
type ackSet []span

// add marks [from, to) acknowledged.
func (a ackSet) add(from, to uint64) ackSet {
	if from >= to {
		return a
	}
	i, _ := slices.BinarySearchFunc(a, from, func(s span, v uint64) int {
		switch {
		case s.to < v:
			return -1
		case s.from > v:
			return 1
		}
		return 0
	})
	// a[i] is the first span ending at or after from: merge every span
	// that touches [from, to).
	j := i
	for j < len(a) && a[j].from <= to {
		from, to = min(from, a[j].from), max(to, a[j].to)
		j++
	}
	return slices.Replace(a, i, j, span{from, to})
}

// covers reports whether every seq of [from, to) is acknowledged.
func (a ackSet) covers(from, to uint64) bool {
	if from >= to {
		return true
	}
	for _, s := range a {
		if s.from <= from && to <= s.to {
			return true
		}
	}
	return false
}

// has reports whether seq is acknowledged.
func (a ackSet) has(seq uint64) bool { return a.covers(seq, seq+1) }

// firstGap is the lowest seq ≥ from not acknowledged.
func (a ackSet) firstGap(from uint64) uint64 {
	for _, s := range a {
		if s.from <= from && from < s.to {
			return s.to
		}
	}
	return from
}

// gapEnd is where the hole starting at seq (not acknowledged) ends: the
// next acknowledged span's start, or limit.
func (a ackSet) gapEnd(seq, limit uint64) uint64 {
	for _, s := range a {
		if s.from > seq {
			return min(s.from, limit)
		}
	}
	return limit
}

// end is the end of the highest acknowledged span (0 when none).
func (a ackSet) end() uint64 {
	if len(a) == 0 {
		return 0
	}
	return a[len(a)-1].to
}

func (a ackSet) marshal() []byte {
	var b bytes.Buffer
	for _, s := range a {
		fmt.Fprintf(&b, "%d %d\n", s.from, s.to)
	}
	return b.Bytes()
}

// readAckSet reads an output's acknowledged spans; a missing file is an
// empty set.
func readAckSet(path string) (ackSet, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read send offsets %s: %w", path, err)
	}
	var a ackSet
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			return nil, fmt.Errorf("read send offsets %s:%d: want two numbers", path, line)
		}
		from, err1 := strconv.ParseUint(f[0], 10, 64)
		to, err2 := strconv.ParseUint(f[1], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("read send offsets %s:%d: %w", path, line, err)
		}
		a = a.add(from, to)
	}
	return a, nil
}

// writeFileAtomic replaces path atomically: a killed process leaves the
// old or the new content, never a mix. It does not fsync: acknowledged
// offsets that a power loss takes back only make the last batches resend
// (at-least-once), and an fsync per batch would cost more than sampling
// at 100 ms does.
func writeFileAtomic(path string, b []byte) (err error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if _, err := f.Write(b); err != nil {
		return errors.Join(fmt.Errorf("write %s: %w", tmp, err), f.Close())
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}
