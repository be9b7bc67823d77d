package tma

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Decode parses a body holding one TMA message or a JSON array of them and
// validates every message. It returns *ValidationError listing every
// violation with its path; a body with any invalid message yields no messages.
// TEMPORARY minimal implementation; replaced by the schema-exact decoder.
func Decode(body []byte) ([]Message, error) {
	body = bytes.TrimSpace(body)
	var raws []json.RawMessage
	if len(body) > 0 && body[0] == '[' {
		if err := json.Unmarshal(body, &raws); err != nil {
			return nil, &ValidationError{Errors: []FieldError{{Message: fmt.Sprintf("not json: %v", err)}}}
		}
	} else {
		raws = []json.RawMessage{body}
	}
	msgs := make([]Message, len(raws))
	for i, r := range raws {
		if err := json.Unmarshal(r, &msgs[i]); err != nil {
			return nil, &ValidationError{Errors: []FieldError{{Path: fmt.Sprintf("[%d]", i), Message: err.Error()}}}
		}
		msgs[i].Raw = r
	}
	return msgs, nil
}
