package contract

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValidTenant(t *testing.T) {
	for _, tc := range []struct {
		tenant string
		want   bool
	}{
		{"demo", true},
		{"team-a.prod_1", true},
		{strings.Repeat("a", MaxTenantLen), true},
		{"", false},
		{strings.Repeat("a", MaxTenantLen+1), false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"a|b", false},
		{`a\b`, false},
		{"a b", false},
		{"café", false},
		{"tab\t", false},
	} {
		t.Run(tc.tenant, func(t *testing.T) {
			require.Equal(t, tc.want, ValidTenant(tc.tenant))
		})
	}
}
