// Package ship sends the queue's samples to the outputs: TMA JSON to a
// monitor, Prometheus remote_write, MQTT. A Forwarder runs one output's
// senders over the queue: live data first, the backlog beside it at a
// bounded rate, acknowledging to the queue only what the receiver
// acknowledged.
package ship

import (
	"context"
	"errors"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// Output delivers series. Send returns nil only once the receiver
// acknowledged them; a *PermanentError when resending cannot help.
// Outputs are used by two senders at once.
type Output interface {
	Send(ctx context.Context, first uint64, series []samples.Series) error
}

// OutputFunc adapts a function to Output.
type OutputFunc func(ctx context.Context, first uint64, series []samples.Series) error

// Send calls f.
func (f OutputFunc) Send(ctx context.Context, first uint64, series []samples.Series) error {
	return f(ctx, first, series)
}

// ErrNothingToSend is what an output's Send returns when the batch holds
// nothing for it (a TMA output's unmapped series): the batch counts as
// delivered, but not as proof that the receiver answers.
var ErrNothingToSend = errors.New("nothing to send")

// PermanentError is a receiver's refusal of the data itself (HTTP 400,
// 422): the batch is counted as rejected and not resent.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "rejected: " + e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err is a permanent refusal.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}
