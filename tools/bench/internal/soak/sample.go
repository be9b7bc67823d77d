package soak

import (
	"time"
)

// Sample is one reading of the soak.
type Sample struct {
	At time.Duration // since the load started
	// RSS of the tmaflow process, RSSFile the part of it backed by files;
	// Heap its Go heap after a forced GC (-1: not read).
	RSS, RSSFile, Heap int64
	Disk               DiskUsage
	// Answers are the requests answered since the previous sample.
	Answers Answers
	// Accepted and Rejected are requests so far.
	Accepted, Rejected int64
	// AcceptedSamples are the samples of accepted requests so far.
	AcceptedSamples int64
	// Lag is the labeler's and the persister's lag in records.
	Lag int64
	// CPU of tmaflow and of this process so far.
	CPU, BenchCPU time.Duration
}

// Samples are a run's readings, in order.
type Samples []Sample

// LastHalf is the samples at or after half of the last one's time.
func (s Samples) LastHalf() Samples {
	if len(s) == 0 {
		return nil
	}
	half := s[len(s)-1].At / 2
	for i, p := range s {
		if p.At >= half {
			return s[i:]
		}
	}
	return nil
}

// Trend fits f over the samples.
func (s Samples) Trend(f func(Sample) float64) Trend {
	xs, ys := make([]float64, len(s)), make([]float64, len(s))
	for i, p := range s {
		xs[i], ys[i] = p.At.Seconds(), f(p)
	}
	return Fit(xs, ys)
}

// Cores is the mean CPU use of f between the first and last sample.
func (s Samples) Cores(f func(Sample) time.Duration) float64 {
	if len(s) < 2 {
		return 0
	}
	a, b := s[0], s[len(s)-1]
	if b.At <= a.At {
		return 0
	}
	return (f(b) - f(a)).Seconds() / (b.At - a.At).Seconds()
}

// BeforeRetention is the last sample before the broker's retention could
// delete anything: earlier than retention, and before the first sample
// whose kafka/ bytes shrank. ok is false without samples.
func (s Samples) BeforeRetention(retention time.Duration) (Sample, bool) {
	var last Sample
	ok := false
	for i, p := range s {
		if p.At >= retention || (i > 0 && p.Disk.Kafka < s[i-1].Disk.Kafka) {
			break
		}
		last, ok = p, true
	}
	return last, ok
}
