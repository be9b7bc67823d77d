package tma

import (
	"bytes"
	"fmt"
	"strconv"
)

// MaxErrors caps the violations a ValidationError lists; one more entry
// says how many were left out.
const MaxErrors = 100

// MaxDepth is the deepest nesting of arrays and objects a body may have.
// The schema itself needs 6 levels (array body, message, data, data item,
// observations, observation); the rest is room for unknown properties,
// which the schema allows, while bounding the decoder's recursion.
const MaxDepth = 128

// Decode parses a body holding one TMA message (an object) or a non-empty
// JSON array of them, and validates every message against
// schemas/tma-m.schema.json. It returns *ValidationError listing every
// violation with its path (up to MaxErrors); a body with any invalid message
// yields no messages. A body that is not JSON yields a ValidationError with
// Syntax set and one entry giving the byte offset.
//
// Beyond the schema, and like RFC 7493 (I-JSON), it rejects duplicate
// object keys anywhere, invalid UTF-8 and unpaired surrogate escapes in
// strings, nesting deeper than MaxDepth, and values out of the float64
// range, so every consumer reads the forwarded bytes the same way.
//
// Message.Raw of each message is a sub-slice of body, not a copy.
func Decode(body []byte) ([]Message, error) {
	d := decoder{buf: body}
	d.reserve()
	d.body()
	if d.syntax != nil {
		return nil, &ValidationError{Errors: []FieldError{*d.syntax}, Syntax: true}
	}
	if d.nerr > 0 {
		if d.nerr > len(d.errs) {
			d.errs = append(d.errs, FieldError{Message: fmt.Sprintf("... and %d more errors", d.nerr-len(d.errs))})
		}
		return nil, &ValidationError{Errors: d.errs}
	}
	return d.msgs, nil
}

// Smallest encodings, which bound the capacity estimates below so that no
// body makes the decoder reserve much more memory than its own size.
const (
	minObservationLen = len(`{"time":0,"value":0}`)
	minDataLen        = len(`{"type":"event","descriptionId":0,"observations":[]}`) + minObservationLen
	minMessageLen     = len(`{"probeId":0,"resourceId":0,"messageId":0,"sentTime":0,"data":[]}`) + minDataLen
)

// reserve sizes the result slices from a count of brackets, which runs at
// memory speed, so the usual body is decoded with three allocations.
// Every message and data item opens one array and one object, every
// observation one object; the estimate may be off (strings may hold
// brackets, unknown properties add some) and append corrects that.
func (d *decoder) reserve() {
	nObjects := bytes.Count(d.buf, []byte{'{'})
	nArrays := bytes.Count(d.buf, []byte{'['})
	nMsgs := 1
	if i := bytes.IndexByte(d.buf, '['); i >= 0 && i < bytes.IndexByte(d.buf, '{') {
		nArrays-- // the body's
		nMsgs = 4 // a guess: arrays of messages are rare
	}
	// Arrays: one data per message, one observations per data item.
	nData := nArrays - 1
	nObs := nObjects - nArrays
	d.msgs = make([]Message, 0, min(max(nMsgs, 1), len(d.buf)/minMessageLen+1))
	d.data = make([]Data, 0, min(max(nData, 1), len(d.buf)/minDataLen+1))
	d.obs = make([]Observation, 0, min(max(nObs, 1), len(d.buf)/minObservationLen+1))
}

// level locates the object being parsed, for error paths.
type level uint8

const (
	lvlBody level = iota
	lvlMsg
	lvlData
	lvlObs
)

// Fields of the described objects, as bits of a seen-mask.
const (
	fProbeID = 1 << iota
	fResourceID
	fMessageID
	fSentTime
	fData
	fDescriptionID
	fType
	fObservations
	fTime
	fValue
)

type decoder struct {
	buf   []byte
	pos   int
	depth int
	cur   level // where a syntax error is reported

	arrayBody bool
	msgIdx    int
	dataIdx   int
	obsIdx    int

	// The result. Data and Observations of each item are cut from data
	// and obs when it is complete; if an append reallocates later, the
	// items made before keep the old array, whose part they use is final.
	msgs []Message
	data []Data
	obs  []Observation

	keys   [lvlObs + 1]keySet // unknown keys of the open described objects
	errs   []FieldError
	nerr   int
	syntax *FieldError
}

func (d *decoder) body() {
	d.skipWS()
	switch d.peek() {
	case '{':
		d.message()
	case '[':
		d.arrayBody = true
		d.enter()
		first := true
		for ; d.more(']', first); first = false {
			if d.peek() == '{' {
				if !d.message() {
					return
				}
			} else {
				if !d.skipValue(lvlMsg, "", nil) {
					return
				}
				d.fail(lvlMsg, "", "must be an object")
			}
			d.msgIdx++
		}
		if d.syntax != nil {
			return
		}
		if first {
			d.fail(lvlBody, "", "must be a non-empty array")
		}
	default:
		if !d.skipValue(lvlBody, "", nil) {
			return
		}
		d.fail(lvlBody, "", "must be an object or a non-empty array of objects")
	}
	if d.syntax != nil {
		return
	}
	d.cur = lvlBody
	d.skipWS()
	if d.pos < len(d.buf) {
		d.syntaxErr("invalid " + charDesc(d.buf[d.pos]) + " after top-level value")
	}
}

// message parses the message object at d.pos. It returns false on a
// syntax error.
func (d *decoder) message() bool {
	start := d.pos
	d.cur = lvlMsg
	d.enter()
	ks := &d.keys[lvlMsg]
	ks.reset()
	var m Message
	d0 := len(d.data)
	var seen uint32
	for first := true; d.more('}', first); first = false {
		key, ok := d.key()
		if !ok {
			return false
		}
		f := messageField(key)
		if !d.member(lvlMsg, key, f, &seen, ks) {
			if !d.skipValue(lvlMsg, "", key) {
				return false
			}
			continue
		}
		switch f {
		case fProbeID:
			ok = d.intValue(lvlMsg, "probeId", &m.ProbeID)
		case fResourceID:
			ok = d.intValue(lvlMsg, "resourceId", &m.ResourceID)
		case fMessageID:
			ok = d.intValue(lvlMsg, "messageId", &m.MessageID)
		case fSentTime:
			ok = d.intValue(lvlMsg, "sentTime", &m.SentTime)
		case fData:
			ok = d.dataArray()
		}
		if !ok {
			return false
		}
	}
	if d.syntax != nil {
		return false
	}
	d.required(lvlMsg, seen, fProbeID, "probeId")
	d.required(lvlMsg, seen, fResourceID, "resourceId")
	d.required(lvlMsg, seen, fMessageID, "messageId")
	d.required(lvlMsg, seen, fSentTime, "sentTime")
	d.required(lvlMsg, seen, fData, "data")
	m.Raw = d.buf[start:d.pos:d.pos]
	m.Data = d.data[d0:len(d.data):len(d.data)]
	d.msgs = append(d.msgs, m)
	d.cur = lvlBody
	return true
}

func messageField(key []byte) int {
	switch string(key) {
	case "probeId":
		return fProbeID
	case "resourceId":
		return fResourceID
	case "messageId":
		return fMessageID
	case "sentTime":
		return fSentTime
	case "data":
		return fData
	}
	return 0
}

// member records key in the open object and reports whether its value is
// to be parsed as field f. Unknown and duplicated keys are not: their
// values are only checked for syntax.
func (d *decoder) member(lvl level, key []byte, f int, seen *uint32, ks *keySet) bool {
	if f == 0 {
		if ks.add(key) {
			d.fail(lvl, keyPath(key), "duplicate key")
		}
		return false
	}
	if *seen&uint32(f) != 0 {
		d.fail(lvl, keyPath(key), "duplicate key")
		return false
	}
	*seen |= uint32(f)
	return true
}

func (d *decoder) required(lvl level, seen uint32, f int, name string) {
	if seen&uint32(f) == 0 {
		d.fail(lvl, name, "is required")
	}
}

func (d *decoder) dataArray() bool {
	if d.peek() != '[' {
		if !d.skipValue(lvlMsg, "data", nil) {
			return false
		}
		d.fail(lvlMsg, "data", "must be a non-empty array")
		return true
	}
	d.enter()
	d.dataIdx = 0
	first := true
	for ; d.more(']', first); first = false {
		if d.peek() == '{' {
			if !d.dataItem() {
				return false
			}
		} else {
			if !d.skipValue(lvlData, "", nil) {
				return false
			}
			d.fail(lvlData, "", "must be an object")
		}
		d.dataIdx++
	}
	if d.syntax != nil {
		return false
	}
	if first {
		d.fail(lvlMsg, "data", "must be a non-empty array")
	}
	return true
}

func (d *decoder) dataItem() bool {
	d.cur = lvlData
	d.enter()
	ks := &d.keys[lvlData]
	ks.reset()
	var it Data
	o0 := len(d.obs)
	var seen uint32
	for first := true; d.more('}', first); first = false {
		key, ok := d.key()
		if !ok {
			return false
		}
		f := dataField(key)
		if !d.member(lvlData, key, f, &seen, ks) {
			if !d.skipValue(lvlData, "", key) {
				return false
			}
			continue
		}
		switch f {
		case fDescriptionID:
			ok = d.intValue(lvlData, "descriptionId", &it.DescriptionID)
		case fType:
			ok = d.typeValue(&it.Type)
		case fObservations:
			ok = d.observations()
		}
		if !ok {
			return false
		}
	}
	if d.syntax != nil {
		return false
	}
	d.required(lvlData, seen, fType, "type")
	d.required(lvlData, seen, fDescriptionID, "descriptionId")
	d.required(lvlData, seen, fObservations, "observations")
	it.Observations = d.obs[o0:len(d.obs):len(d.obs)]
	d.data = append(d.data, it)
	d.cur = lvlMsg
	return true
}

func dataField(key []byte) int {
	switch string(key) {
	case "descriptionId":
		return fDescriptionID
	case "type":
		return fType
	case "observations":
		return fObservations
	}
	return 0
}

func (d *decoder) typeValue(t *DataType) bool {
	if d.peek() == '"' {
		s, escaped, ok := d.str()
		if !ok {
			return false
		}
		if escaped {
			s = unescape(s)
		}
		switch string(s) {
		case string(Measurement):
			*t = Measurement
			return true
		case string(Event):
			*t = Event
			return true
		}
	} else if !d.skipValue(lvlData, "type", nil) {
		return false
	}
	d.fail(lvlData, "type", `must be one of "measurement", "event"`)
	return true
}

func (d *decoder) observations() bool {
	if d.peek() != '[' {
		if !d.skipValue(lvlData, "observations", nil) {
			return false
		}
		d.fail(lvlData, "observations", "must be a non-empty array")
		return true
	}
	d.enter()
	d.obsIdx = 0
	first := true
	for ; d.more(']', first); first = false {
		if d.peek() == '{' {
			if !d.observation() {
				return false
			}
		} else {
			if !d.skipValue(lvlObs, "", nil) {
				return false
			}
			d.fail(lvlObs, "", "must be an object")
		}
		d.obsIdx++
	}
	if d.syntax != nil {
		return false
	}
	if first {
		d.fail(lvlData, "observations", "must be a non-empty array")
	}
	return true
}

func (d *decoder) observation() bool {
	d.cur = lvlObs
	d.enter()
	ks := &d.keys[lvlObs]
	ks.reset()
	var o Observation
	var seen uint32
	for first := true; d.more('}', first); first = false {
		key, ok := d.key()
		if !ok {
			return false
		}
		var f int
		switch string(key) {
		case "time":
			f = fTime
		case "value":
			f = fValue
		}
		if !d.member(lvlObs, key, f, &seen, ks) {
			if !d.skipValue(lvlObs, "", key) {
				return false
			}
			continue
		}
		if f == fTime {
			ok = d.intValue(lvlObs, "time", &o.Time)
		} else {
			ok = d.floatValue(&o.Value)
		}
		if !ok {
			return false
		}
	}
	if d.syntax != nil {
		return false
	}
	d.required(lvlObs, seen, fTime, "time")
	d.required(lvlObs, seen, fValue, "value")
	d.obs = append(d.obs, o)
	d.cur = lvlData
	return true
}

// intValue parses an integer >= 0 that fits int64 (the schema's id and
// time). Like JSON Schema it takes the mathematical value, so 1.0 and 1e3
// are integers and 1.5 is not.
func (d *decoder) intValue(lvl level, name string, v *int64) bool {
	c := d.peek()
	if c != '-' && (c < '0' || c > '9') {
		if !d.skipValue(lvl, name, nil) {
			return false
		}
		d.fail(lvl, name, "must be an integer >= 0")
		return true
	}
	tok, ok := d.number()
	if !ok {
		return false
	}
	n, st := parseNonNegInt(tok)
	switch st {
	case intOK:
		*v = n
	case intTooLarge:
		d.fail(lvl, name, "must be an integer <= 9223372036854775807")
	case intExpRange:
		d.fail(lvl, name, "must be an integer >= 0 (exponent out of range)")
	default:
		d.fail(lvl, name, "must be an integer >= 0")
	}
	return true
}

func (d *decoder) floatValue(v *float64) bool {
	c := d.peek()
	if c != '-' && (c < '0' || c > '9') {
		if !d.skipValue(lvlObs, "value", nil) {
			return false
		}
		d.fail(lvlObs, "value", "must be a number")
		return true
	}
	tok, ok := d.number()
	if !ok {
		return false
	}
	f, ok := parseFloat(tok)
	if !ok {
		d.fail(lvlObs, "value", "must be a number within the float64 range (magnitude below 1.8e308)")
		return true
	}
	*v = f
	return true
}

// fail records a violation at the path of lvl plus field.
func (d *decoder) fail(lvl level, field, msg string) {
	d.nerr++
	if len(d.errs) < MaxErrors {
		d.errs = append(d.errs, FieldError{Path: d.path(lvl, field), Message: msg})
	}
}

func (d *decoder) syntaxErr(what string) {
	if d.syntax == nil {
		d.syntax = &FieldError{
			Path:    d.path(d.cur, ""),
			Message: fmt.Sprintf("invalid JSON at offset %d: %s", d.pos, what),
		}
	}
}

// path renders the location of lvl, `[2].data[3].observations[0]`, plus
// field. Only called for errors.
func (d *decoder) path(lvl level, field string) string {
	var b []byte
	if lvl >= lvlMsg && d.arrayBody {
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(d.msgIdx), 10)
		b = append(b, ']')
	}
	if lvl >= lvlData {
		if len(b) > 0 {
			b = append(b, '.')
		}
		b = append(b, "data["...)
		b = strconv.AppendInt(b, int64(d.dataIdx), 10)
		b = append(b, ']')
	}
	if lvl >= lvlObs {
		b = append(b, ".observations["...)
		b = strconv.AppendInt(b, int64(d.obsIdx), 10)
		b = append(b, ']')
	}
	if field != "" {
		if len(b) > 0 && field[0] != '[' {
			b = append(b, '.')
		}
		b = append(b, field...)
	}
	return string(b)
}

// keyPath renders an object key as a path element: bare when it looks
// like an identifier, else bracketed and quoted.
func keyPath(key []byte) string {
	for i, c := range key {
		if c == '_' || c == '$' || (c|0x20 >= 'a' && c|0x20 <= 'z') || (i > 0 && (c == '-' || (c >= '0' && c <= '9'))) {
			continue
		}
		return "[" + strconv.Quote(string(key)) + "]"
	}
	if len(key) == 0 {
		return `[""]`
	}
	return string(key)
}

func charDesc(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("character %q", rune(c))
	}
	return fmt.Sprintf("byte 0x%02x", c)
}
