package bus

import (
	"sync"
	"testing"
)

// deep recurses n frames of about 100 bytes each, like a handler's call
// chain through a decoder and the TSDB.
//
//go:noinline
func deep(n int) int {
	var pad [64]byte
	pad[n%64] = byte(n)
	if n == 0 {
		return int(pad[0])
	}
	return deep(n-1) + int(pad[n%64])
}

// BenchmarkHandlerGoroutine runs a deep call chain on a new goroutine per
// operation, as Watermill runs handlers, with and without growing the
// stack first.
func BenchmarkHandlerGoroutine(b *testing.B) {
	for _, tc := range []struct {
		name string
		grow bool
	}{{"grown at entry", true}, {"grown on demand", false}} {
		b.Run(tc.name, func(b *testing.B) {
			var wg sync.WaitGroup
			for b.Loop() {
				wg.Go(func() {
					if tc.grow {
						growStack()
					}
					deep(100)
				})
				wg.Wait()
			}
		})
	}
}
