// Package tma is the ATMOSPHERE TMA monitoring message: its Go model, a
// decoder that validates against schemas/tma-m.schema.json with errors that
// name the field path, and the conversion of its integer timestamps.
package tma

import (
	"strings"
	"time"
)

// DataType is the type of a data item.
type DataType string

// Data item types.
const (
	Measurement DataType = "measurement"
	Event       DataType = "event"
)

// Message is one TMA monitoring message.
type Message struct {
	ProbeID    int64  `json:"probeId"`
	ResourceID int64  `json:"resourceId"`
	MessageID  int64  `json:"messageId"`
	SentTime   int64  `json:"sentTime"`
	Data       []Data `json:"data"`

	// Raw is the message's JSON exactly as received (one element of an
	// array body), so it is forwarded without re-encoding.
	Raw []byte `json:"-"`
}

// Data is one data item: observations of one description.
type Data struct {
	DescriptionID int64         `json:"descriptionId"`
	Type          DataType      `json:"type"`
	Observations  []Observation `json:"observations"`
}

// Observation is one timestamped value.
type Observation struct {
	Time  int64   `json:"time"`
	Value float64 `json:"value"`
}

// FieldError is one violation, located by its JSON path
// (`[2].data[3].observations[0].time` for the third message of an array body).
type FieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Message
	}
	return e.Path + ": " + e.Message
}

// ValidationError lists every violation found in a body.
type ValidationError struct {
	Errors []FieldError
	// Syntax is set when the body is not well-formed JSON; Errors then
	// holds the one error, with its byte offset.
	Syntax bool
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fe.Error()
	}
	return "invalid tma message: " + strings.Join(parts, "; ")
}

// Observations returns the number of observations in m.
func (m Message) Observations() int {
	n := 0
	for _, d := range m.Data {
		n += len(d.Observations)
	}
	return n
}

// Thresholds of Time: the largest magnitude read in each unit.
const (
	maxSeconds = 1e11 // 5138-11-16 in seconds; 1973-03-03 in milliseconds
	maxMillis  = 1e14 // 5138-11-16 in milliseconds; 1973-03-03 in microseconds
	maxMicros  = 1e17 // 5138-11-16 in microseconds; 1973-03-03 in nanoseconds
)

// Time converts a TMA time (sentTime, observation time) to a time.Time in
// UTC. TMA times are integers in an unstated unit — Python probes send
// seconds, Java probes milliseconds — so the unit is read from the
// magnitude:
//
//	v < 1e11  seconds       (1970-01-01 .. 5138-11-16)
//	v < 1e14  milliseconds  (1973-03-03 .. 5138-11-16)
//	v < 1e17  microseconds  (1973-03-03 .. 5138-11-16)
//	otherwise nanoseconds   (1973-03-03 .. 2262-04-11, the int64 limit)
//
// So any instant from 1973-03-03 09:46:40 UTC to 5138 (2262 in
// nanoseconds) is read right whatever the unit; earlier ones only in
// seconds (a millisecond time of 1972 would be read as seconds, thousands
// of years ahead). Negative values are read as seconds before 1970.
func Time(v int64) time.Time {
	switch {
	case v < maxSeconds:
		return time.Unix(v, 0).UTC()
	case v < maxMillis:
		return time.UnixMilli(v).UTC()
	case v < maxMicros:
		return time.UnixMicro(v).UTC()
	default:
		return time.Unix(0, v).UTC()
	}
}
