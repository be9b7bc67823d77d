package rwbench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseSizes(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []int
		wantErr string
	}{
		{in: "100,1000, 10000", want: []int{100, 1000, 10000}},
		{in: "5", want: []int{5}},
		{in: "0", wantErr: `"0" is not a positive number`},
		{in: "1,x", wantErr: `"x" is not a positive number`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := parseSizes(tc.in)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestValidate(t *testing.T) {
	base := Config{Instances: 100, SeriesPerInstance: 100, Writers: 4, Duration: time.Second, SampleInterval: time.Second}
	base.TmaflowBinary = "tmaflow"
	require.NoError(t, base.Validate())
	odd := base
	odd.Sizes = []int{150}
	require.ErrorContains(t, odd.Validate(), "size 150: not a multiple of series-per-instance 100")
	none := base
	none.TmaflowBinary = ""
	require.ErrorContains(t, none.Validate(), "tmaflow.src or tmaflow.bin")
}

func TestGroups(t *testing.T) {
	g := Groups(3, 2)
	require.Len(t, g, 3)
	require.Len(t, g[2], 2)
	require.Equal(t, "host-2", g[2][1][1].Value)
	require.Equal(t, "1", g[2][1][3].Value)
	for _, s := range g[0] {
		for i := 1; i < len(s); i++ {
			require.Less(t, s[i-1].Name, s[i].Name, "labels sorted, as remote write requires")
		}
	}
}

func TestCPUPerSample(t *testing.T) {
	require.Equal(t, 5*time.Microsecond, Result{CPU: time.Second, Samples: 200000}.CPUPerSample())
	require.Zero(t, Result{CPU: time.Second}.CPUPerSample())
}
