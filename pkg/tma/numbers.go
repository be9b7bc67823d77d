package tma

import (
	"math"
	"strconv"
)

type intStatus uint8

const (
	intOK intStatus = iota
	intNotNonNeg
	intTooLarge
	intExpRange // exponent beyond what exact arithmetic takes on
)

// parseNonNegInt classifies a JSON number token (valid syntax) by its exact
// value: an integer in [0, MaxInt64], a fraction or negative, or too large.
func parseNonNegInt(tok []byte) (int64, intStatus) {
	// Fast path: plain digits, up to 18 of them cannot overflow.
	if len(tok) <= 18 && tok[0] != '-' {
		var n int64
		i := 0
		for ; i < len(tok); i++ {
			c := tok[i]
			if c < '0' || c > '9' {
				break
			}
			n = n*10 + int64(c-'0')
		}
		if i == len(tok) {
			return n, intOK
		}
	}
	return parseNonNegIntSlow(tok)
}

func parseNonNegIntSlow(tok []byte) (int64, intStatus) {
	neg := tok[0] == '-'
	if neg {
		tok = tok[1:]
	}
	// The value is D × 10^(exp − nFrac), D the digits of the integer and
	// fraction parts. Only D's significant digits (first to last non-zero)
	// matter, so any number of leading or trailing zeros is fine.
	var (
		nDigits     int // digits of D seen
		nFrac       int
		first, last = -1, -1
		i           int
	)
	for ; i < len(tok) && tok[i] >= '0' && tok[i] <= '9'; i++ {
		if tok[i] != '0' {
			if first < 0 {
				first = nDigits
			}
			last = nDigits
		}
		nDigits++
	}
	intEnd := i
	if i < len(tok) && tok[i] == '.' {
		for i++; i < len(tok) && tok[i] >= '0' && tok[i] <= '9'; i++ {
			if tok[i] != '0' {
				if first < 0 {
					first = nDigits
				}
				last = nDigits
			}
			nDigits++
			nFrac++
		}
	}
	exp, ok := exponent(tok[i:])
	switch {
	case !ok && first < 0:
		return 0, intExpRange // zero, but math/big would not say so
	case !ok && exp > 0:
		return 0, intTooLarge
	case !ok:
		return 0, intNotNonNeg // a tiny fraction
	case first < 0:
		return 0, intOK // zero, however written (-0, 0.0e5)
	case neg:
		return 0, intNotNonNeg
	}
	// Like math/big (and so the JSON Schema library), give up when the
	// power of ten, exp − nFrac, is beyond ±1e6: the value is then either
	// far too large or, to be an integer, needs a million zeros.
	if exp > 1e6+int64(nFrac) {
		return 0, intTooLarge
	}
	if exp < int64(nFrac)-1e6 {
		return 0, intExpRange
	}
	// With S = D[first..last], which ends in a non-zero digit, the value
	// is S × 10^e: an integer iff e >= 0.
	e := exp - int64(nFrac) + int64(nDigits-1-last)
	if e < 0 {
		return 0, intNotNonNeg
	}
	nSig := int64(last - first + 1)
	if nSig+e > 19 {
		return 0, intTooLarge
	}
	var n uint64
	for k := first; k <= last; k++ {
		n = n*10 + uint64(digitAt(tok, intEnd, k)-'0')
	}
	for ; e > 0; e-- {
		n *= 10 // at most 19 digits in all: no uint64 overflow
	}
	if n > math.MaxInt64 {
		return 0, intTooLarge
	}
	return int64(n), intOK
}

// exponent parses the exponent part ("e-12", or "" for none) of a number
// token. If it does not fit an int64, where math/big stops, ok is false
// and the result only has the exponent's sign.
func exponent(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, true
	}
	b = b[1:] // 'e' or 'E'
	neg := false
	if b[0] == '+' || b[0] == '-' {
		neg = b[0] == '-'
		b = b[1:]
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++ // -2^63 fits
	}
	var n uint64
	for _, c := range b {
		if n > (limit-uint64(c-'0'))/10 {
			if neg {
				return -1, false
			}
			return 1, false
		}
		n = n*10 + uint64(c-'0')
	}
	if neg {
		return int64(-n), true // two's complement: -2^63 wraps to itself
	}
	return int64(n), true
}

// digitAt returns digit k of D, skipping the decimal point at intEnd.
func digitAt(tok []byte, intEnd, k int) byte {
	if k < intEnd {
		return tok[k]
	}
	return tok[k+1]
}

// parseFloat converts a JSON number token (valid syntax) to the nearest
// float64; ok is false when it is beyond the float64 range. Probes send
// short decimals, which take Clinger's fast path: a mantissa below 2^53
// and a power of ten up to 1e22 are both exact, so one IEEE multiplication
// or division rounds correctly. Anything else goes to strconv.
func parseFloat(tok []byte) (float64, bool) {
	i, neg := 0, false
	if tok[0] == '-' {
		i, neg = 1, true
	}
	var (
		mant uint64
		frac int // digits after the point
		e10  int
		dot  bool
	)
	for ; i < len(tok); i++ {
		c := tok[i]
		if c == '.' {
			dot = true
			continue
		}
		if c == 'e' || c == 'E' {
			exp, ok := smallExp(tok[i+1:])
			if !ok {
				return parseFloatSlow(tok)
			}
			e10 = exp
			break
		}
		mant = mant*10 + uint64(c-'0')
		if mant >= 1<<53 {
			return parseFloatSlow(tok)
		}
		if dot {
			frac++
		}
	}
	e10 -= frac
	f := float64(mant)
	switch {
	case e10 < 0:
		if e10 < -22 {
			return parseFloatSlow(tok)
		}
		f /= pow10(-e10)
	case e10 > 0:
		if e10 > 22 {
			return parseFloatSlow(tok)
		}
		f *= pow10(e10)
	}
	if neg {
		f = -f
	}
	return f, true
}

// smallExp parses an exponent of at most three digits.
func smallExp(b []byte) (int, bool) {
	neg := false
	if b[0] == '+' || b[0] == '-' {
		neg = b[0] == '-'
		b = b[1:]
	}
	if len(b) > 3 {
		return 0, false
	}
	e := 0
	for _, c := range b {
		e = e*10 + int(c-'0')
	}
	if neg {
		e = -e
	}
	return e, true
}

func parseFloatSlow(tok []byte) (float64, bool) {
	// Valid JSON number syntax is valid ParseFloat syntax, so the only
	// possible error is overflow to ±Inf.
	f, err := strconv.ParseFloat(string(tok), 64)
	return f, err == nil && !math.IsInf(f, 0)
}

// pow10 returns 10^n for 0 <= n <= 22, the powers a float64 holds exactly.
func pow10(n int) float64 {
	switch n {
	case 0:
		return 1e0
	case 1:
		return 1e1
	case 2:
		return 1e2
	case 3:
		return 1e3
	case 4:
		return 1e4
	case 5:
		return 1e5
	case 6:
		return 1e6
	case 7:
		return 1e7
	case 8:
		return 1e8
	case 9:
		return 1e9
	case 10:
		return 1e10
	case 11:
		return 1e11
	case 12:
		return 1e12
	case 13:
		return 1e13
	case 14:
		return 1e14
	case 15:
		return 1e15
	case 16:
		return 1e16
	case 17:
		return 1e17
	case 18:
		return 1e18
	case 19:
		return 1e19
	case 20:
		return 1e20
	case 21:
		return 1e21
	default:
		return 1e22
	}
}
