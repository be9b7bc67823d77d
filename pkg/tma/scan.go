package tma

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The JSON syntax layer of the decoder: RFC 8259 grammar, checked byte by
// byte, with RFC 7493's stricter strings (valid UTF-8, paired surrogates).

func (d *decoder) peek() byte {
	if d.pos < len(d.buf) {
		return d.buf[d.pos]
	}
	return 0
}

func (d *decoder) skipWS() {
	b, i := d.buf, d.pos
	for i < len(b) && b[i] <= ' ' && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	d.pos = i
}

// enter consumes the '{' or '[' at d.pos.
func (d *decoder) enter() {
	d.pos++
	d.depth++
}

// more advances to the next member or element of the open object or array
// (closed by close) and reports whether there is one. On false the
// container has been consumed, or a syntax error recorded.
func (d *decoder) more(close byte, first bool) bool {
	d.skipWS()
	if d.pos >= len(d.buf) {
		d.syntaxErr("unexpected end of input")
		return false
	}
	c := d.buf[d.pos]
	if c == close {
		d.pos++
		d.depth--
		return false
	}
	if first {
		return true
	}
	if c != ',' {
		if close == '}' {
			d.syntaxErr("invalid " + charDesc(c) + " after object member (expecting ',' or '}')")
		} else {
			d.syntaxErr("invalid " + charDesc(c) + " after array element (expecting ',' or ']')")
		}
		return false
	}
	d.pos++
	d.skipWS()
	return true
}

// key reads an object key and its colon, leaving d.pos at the value. The
// key is a stable slice (of the body, or a fresh copy if it had escapes).
func (d *decoder) key() ([]byte, bool) {
	if d.peek() != '"' {
		if d.pos >= len(d.buf) {
			d.syntaxErr("unexpected end of input")
		} else {
			d.syntaxErr("invalid " + charDesc(d.buf[d.pos]) + " looking for object key")
		}
		return nil, false
	}
	k, escaped, ok := d.str()
	if !ok {
		return nil, false
	}
	if escaped {
		k = unescape(k)
	}
	d.skipWS()
	if d.peek() != ':' {
		if d.pos >= len(d.buf) {
			d.syntaxErr("unexpected end of input")
		} else {
			d.syntaxErr("invalid " + charDesc(d.buf[d.pos]) + " after object key (expecting ':')")
		}
		return nil, false
	}
	d.pos++
	d.skipWS()
	return k, true
}

// skipValue checks the syntax of the value at d.pos and moves past it.
// Duplicate keys inside it are violations of the property at lvl named
// by key (an unknown property) or else by name.
func (d *decoder) skipValue(lvl level, name string, key []byte) bool {
	if d.pos >= len(d.buf) {
		d.syntaxErr("unexpected end of input")
		return false
	}
	switch c := d.buf[d.pos]; c {
	case '{', '[':
		if d.depth >= MaxDepth {
			d.syntaxErr(fmt.Sprintf("nesting deeper than %d", MaxDepth))
			return false
		}
		d.enter()
		var ks keySet
		first := true
		for ; d.more(c+2, first); first = false { // '{'+2 == '}', '['+2 == ']'
			if c == '{' {
				k, ok := d.key()
				if !ok {
					return false
				}
				if ks.add(k) {
					if key != nil {
						name = keyPath(key)
					}
					d.fail(lvl, name, "contains duplicate key "+strconv.Quote(string(k)))
				}
			}
			if !d.skipValue(lvl, name, key) {
				return false
			}
		}
		return d.syntax == nil
	case '"':
		_, _, ok := d.str()
		return ok
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			_, ok := d.number()
			return ok
		}
		d.syntaxErr("invalid " + charDesc(c) + " looking for beginning of value")
		return false
	}
}

func (d *decoder) literal(lit string) bool {
	for i := 0; i < len(lit); i++ {
		if d.pos >= len(d.buf) {
			d.syntaxErr("unexpected end of input")
			return false
		}
		if d.buf[d.pos] != lit[i] {
			d.syntaxErr("invalid " + charDesc(d.buf[d.pos]) + " in literal " + lit)
			return false
		}
		d.pos++
	}
	return true
}

// number reads a number with JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
// NaN, Infinity, leading zeros, '+' and bare '.' are syntax errors.
func (d *decoder) number() ([]byte, bool) {
	b, i := d.buf, d.pos
	start := i
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	default:
		d.pos = i
		return nil, d.numberErr()
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			d.pos = i
			return nil, d.numberErr()
		}
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			d.pos = i
			return nil, d.numberErr()
		}
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		}
	}
	d.pos = i
	return b[start:i], true
}

func (d *decoder) numberErr() bool {
	if d.pos >= len(d.buf) {
		d.syntaxErr("unexpected end of input in number")
	} else {
		d.syntaxErr("invalid " + charDesc(d.buf[d.pos]) + " in number")
	}
	return false
}

// str reads the string at d.pos, checking escapes and UTF-8, and returns
// its raw content (between the quotes) and whether it has escapes.
func (d *decoder) str() (s []byte, escaped, ok bool) {
	b := d.buf
	start := d.pos + 1
	i := start
	for {
		i = skipPlain(b, i)
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			d.pos = i + 1
			return b[start:i], escaped, true
		case c == '\\':
			escaped = true
			n := escapeLen(b[i:])
			if n == 0 {
				d.pos = i
				d.syntaxErr("invalid escape sequence in string")
				return nil, false, false
			}
			i += n
		case c < 0x20:
			d.pos = i
			d.syntaxErr("invalid control character in string (must be escaped)")
			return nil, false, false
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				d.pos = i
				d.syntaxErr("invalid UTF-8 in string")
				return nil, false, false
			}
			i += size
		}
	}
	d.pos = len(b)
	d.syntaxErr("unexpected end of input in string")
	return nil, false, false
}

// ones has a 1 in every byte, for SWAR byte tests.
const ones = 0x0101010101010101

// skipPlain returns the index of the first byte from i on that is not
// plain string content: a quote, backslash, control or non-ASCII byte.
func skipPlain(b []byte, i int) int {
	// Eight bytes at a time. Each test sets the high bit of a matching
	// byte; borrows may also mark bytes after the first match, never
	// before it, so the lowest mark is the first special byte.
	for i+8 <= len(b) {
		x := binary.LittleEndian.Uint64(b[i:])
		q := x ^ (ones * '"')
		bs := x ^ (ones * '\\')
		m := ((x - ones*0x20) & ^x) | x // < 0x20 or >= 0x80
		m |= (q - ones) & ^q
		m |= (bs - ones) & ^bs
		if m &= ones * 0x80; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
		i += 8
	}
	for ; i < len(b); i++ {
		if c := b[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			return i
		}
	}
	return i
}

// escapeLen returns the length of the valid escape at the start of b, or
// 0. A \u escape of a UTF-16 surrogate must be a high-low pair, as
// anything else decodes to no Unicode character.
func escapeLen(b []byte) int {
	if len(b) < 2 {
		return 0
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2
	case 'u':
		r, ok := hex4(b[2:])
		if !ok {
			return 0
		}
		if !utf16.IsSurrogate(r) {
			return 6
		}
		if r >= 0xDC00 || len(b) < 12 || b[6] != '\\' || b[7] != 'u' {
			return 0
		}
		r2, ok := hex4(b[8:])
		if !ok || r2 < 0xDC00 || r2 > 0xDFFF {
			return 0
		}
		return 12
	}
	return 0
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// unescape decodes the raw content of a string already checked by str.
func unescape(s []byte) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			i++
			continue
		}
		switch s[i+1] {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, _ := hex4(s[i+2:])
			if utf16.IsSurrogate(r) {
				r2, _ := hex4(s[i+8:])
				r = utf16.DecodeRune(r, r2)
				i += 6
			}
			out = utf8.AppendRune(out, r)
			i += 6
			continue
		default: // '"', '\\', '/'
			out = append(out, s[i+1])
		}
		i += 2
	}
	return out
}

// keySet detects duplicate keys of one object: a short list searched
// linearly, switching to a map when objects are large so that a body with
// many keys cannot cost quadratic time.
type keySet struct {
	n     int
	small [8][]byte
	big   map[string]struct{}
}

func (s *keySet) reset() {
	s.n = 0
	s.big = nil
}

// add records k and reports whether it was already there.
func (s *keySet) add(k []byte) bool {
	if s.big != nil {
		if _, dup := s.big[string(k)]; dup {
			return true
		}
		s.big[string(k)] = struct{}{}
		return false
	}
	for _, x := range s.small[:s.n] {
		if string(x) == string(k) {
			return true
		}
	}
	if s.n < len(s.small) {
		s.small[s.n] = k
		s.n++
		return false
	}
	s.big = make(map[string]struct{}, 2*len(s.small))
	for _, x := range s.small[:s.n] {
		s.big[string(x)] = struct{}{}
	}
	s.big[string(k)] = struct{}{}
	return false
}
