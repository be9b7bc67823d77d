package reporter

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNumJSON(t *testing.T) {
	tests := []struct {
		n    Num
		want string
	}{
		{1.5, "1.5"},
		{0, "0"},
		{1e21, "1e+21"},
		{Num(math.NaN()), "null"},
		{Num(math.Inf(1)), "null"},
		{Num(math.Inf(-1)), "null"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			b, err := json.Marshal(tc.n)
			require.NoError(t, err)
			require.Equal(t, tc.want, string(b))
			var back Num
			require.NoError(t, json.Unmarshal(b, &back))
			if tc.want == "null" {
				require.True(t, math.IsNaN(float64(back)))
			} else {
				require.Equal(t, tc.n, back)
			}
		})
	}
}

func TestDocumentID(t *testing.T) {
	s, e := day, day.Add(24*time.Hour)
	id := DocumentID("demo", "daily", s, e)
	require.Len(t, id, 24)
	// The same period in another zone is the same period.
	berlin := mustLoc(t, "Europe/Berlin")
	require.Equal(t, id, DocumentID("demo", "daily", s.In(berlin), e.In(berlin)))
	for _, other := range []string{
		DocumentID("acme", "daily", s, e),
		DocumentID("demo", "weekly", s, e),
		DocumentID("demo", "daily", s, e.Add(time.Hour)),
		DocumentID("demo", "daily", s.Add(-time.Hour), e),
		DocumentID("demo\x00daily", "", s, e), // no ambiguity from joining
	} {
		require.NotEqual(t, id, other)
	}
}
