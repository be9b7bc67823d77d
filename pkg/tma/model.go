// Package tma is the ATMOSPHERE TMA monitoring message: its Go model, a
// decoder that validates against schemas/tma-m.schema.json with errors that
// name the field path, and the conversion of its integer timestamps.
package tma

import "strings"

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
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fe.Error()
	}
	return "invalid tma message: " + strings.Join(parts, "; ")
}
