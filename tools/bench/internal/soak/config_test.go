package soak

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Prometheus gets the persister's compaction: blocks of the soak's
// duration, merged up to 2h as the persister's TSDB merges them.
func TestPrometheusArgs(t *testing.T) {
	for _, tc := range []struct {
		block time.Duration
		want  []string
	}{
		{0, nil},
		{2 * time.Minute, []string{"--storage.tsdb.min-block-duration=2m", "--storage.tsdb.max-block-duration=2h"}},
		{3 * time.Hour, []string{"--storage.tsdb.min-block-duration=3h", "--storage.tsdb.max-block-duration=3h"}},
	} {
		c := Config{TSDBBlock: tc.block}
		require.Equal(t, tc.want, c.prometheusArgs(), "block %s", tc.block)
	}
}
