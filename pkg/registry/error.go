package registry

import (
	"fmt"
	"strconv"
	"strings"
)

// Error is one problem in a registry file, located by line, column and field.
type Error struct {
	File   string
	Line   int
	Column int
	Field  string // e.g. probes[1].secret_hash
	Msg    string
}

func (e *Error) Error() string {
	pos := fmt.Sprintf("%s:%d", e.File, e.Line)
	if e.Column > 0 {
		pos += ":" + strconv.Itoa(e.Column)
	}
	if e.Field == "" {
		return pos + ": " + e.Msg
	}
	return pos + ": " + e.Field + ": " + e.Msg
}

// ErrorList is every problem found in a registry file, in file order.
type ErrorList []*Error

func (l ErrorList) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}
