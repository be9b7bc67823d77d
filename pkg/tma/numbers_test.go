package tma

import (
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// numberTokens yields JSON number tokens: hand-picked edges and random
// ones of every shape the grammar allows.
func numberTokens(n int) []string {
	toks := []string{
		"0", "-0", "0.0", "-0.0e-5", "1", "7.5", "20000.00001", "1535971455", "1535971455123",
		"9007199254740991", "9007199254740992", "9007199254740993", "1e22", "1e23", "1.5e-22", "1e-23",
		"9223372036854775807", "9223372036854775808", "18446744073709551616", "922337203685477580.7e1",
		"92233720368547758070e-1", "0.1", "0.3", "2.2250738585072011e-308", "4.9e-324", "2e-324",
		"1.7976931348623157e308", "1.7976931348623158e308", "1.7976931348623159e308", "1e309", "-1e309",
		"1e-400", "123456789012345678901234567890", "1" + strings.Repeat("0", 30) + "e-30", "1E+2", "1e0002",
		"1e-0", "5e-1", "10e-1", "100e-2", "1.000", "0.00000000000000000000000001e26",
		// Exponents at math/big's limits: the literal must fit an int64,
		// and the power of ten (exponent minus fraction digits) ±1e6.
		"0e9223372036854775807", "0e9223372036854775808", "-0.0e-9223372036854775808", "0e-9223372036854775809",
		"0e99999999999999999999", "1e9223372036854775808", "1e-9223372036854775809",
		"1e1000000", "1e1000001", "1e-1000000", "1e-1000001", "10e-1000001", "1.5e1000001", "0.5e-999999",
	}
	r := rand.New(rand.NewPCG(1, 2))
	digits := func(min, max int) string {
		var b strings.Builder
		for range min + r.IntN(max-min+1) {
			b.WriteByte(byte('0' + r.IntN(10)))
		}
		return b.String()
	}
	for range n {
		var b strings.Builder
		if r.IntN(4) == 0 {
			b.WriteByte('-')
		}
		if r.IntN(5) == 0 {
			b.WriteByte('0')
		} else {
			b.WriteByte(byte('1' + r.IntN(9)))
			b.WriteString(digits(0, 20))
		}
		if r.IntN(2) == 0 {
			b.WriteByte('.')
			b.WriteString(digits(1, 20))
		}
		if r.IntN(3) == 0 {
			b.WriteString([]string{"e", "E", "e+", "e-", "E-"}[r.IntN(5)])
			if r.IntN(50) == 0 {
				b.WriteString(digits(7, 22))
			} else {
				b.WriteString(digits(1, 3))
			}
		}
		toks = append(toks, b.String())
	}
	return toks
}

func TestParseFloatMatchesStrconv(t *testing.T) {
	for _, tok := range numberTokens(200000) {
		want, err := strconv.ParseFloat(tok, 64)
		got, ok := parseFloat([]byte(tok))
		require.Equal(t, err == nil, ok, tok)
		if ok {
			require.Equal(t, math.Float64bits(want), math.Float64bits(got), tok)
		}
	}
}

// The reference is math/big, exact like the JSON Schema library's own
// integer test.
func TestParseNonNegIntMatchesBig(t *testing.T) {
	maxInt := new(big.Rat).SetInt64(math.MaxInt64)
	for _, tok := range numberTokens(200000) {
		got, st := parseNonNegInt([]byte(tok))
		r, ok := new(big.Rat).SetString(tok)
		if !ok { // math/big gave up on the exponent: so must we
			require.NotEqual(t, intOK, st, tok)
			continue
		}
		want := intOK
		switch {
		case r.Sign() < 0 || !r.IsInt():
			want = intNotNonNeg
		case r.Cmp(maxInt) > 0:
			want = intTooLarge
		}
		require.Equal(t, want, st, tok)
		if st == intOK {
			require.Equal(t, r.Num().Int64(), got, tok)
		}
	}
}
