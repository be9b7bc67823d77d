package bus

import "errors"

// permanentError marks an error that retrying cannot fix (undecodable input,
// a schema violation, a recovered panic): the router sends the message to
// the dead-letter topic at once.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent. It returns nil for a nil err.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked by
// Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// ErrTooLarge is wrapped by a publisher's error when a record exceeds what
// the broker (or the producer's batch limit) accepts. Retrying cannot help,
// so ingest answers 413 rather than 503.
var ErrTooLarge = errors.New("record too large for the broker")
