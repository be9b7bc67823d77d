package bridge

import (
	"context"
	"errors"
	"log/slog"

	"github.com/mochi-mqtt/server/v2/packets"
)

// mochiLog is the handler of the embedded broker's logger. mochi logs a
// refused client as a warning without a message, and a refused publish
// also as "error processing packet" with the whole packet; the bridge's
// hooks log each refusal in one line of their own, so mochiLog drops
// those records. Of the others, it drops those below level, names the
// packet instead of dumping it, and gives a message to those without.
type mochiLog struct {
	slog.Handler
	level slog.Level
}

// mochiNoMessage is the message of mochi's records that have none: its
// listeners log that way the error that ended a client's connection.
const mochiNoMessage = "mqtt connection ended"

func (h mochiLog) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.level && h.Handler.Enabled(ctx, l)
}

func (h mochiLog) Handle(ctx context.Context, r slog.Record) error {
	msg := r.Message
	if msg == "" {
		msg = mochiNoMessage
	}
	out := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	refused := false
	r.Attrs(func(a slog.Attr) bool {
		switch v := a.Value.Any().(type) {
		case packets.Packet:
			out.AddAttrs(slog.String("packet_type", packets.PacketNames[v.FixedHeader.Type]))
			if v.TopicName != "" {
				out.AddAttrs(slog.String("topic", v.TopicName))
			}
			return true
		case error:
			refused = refused || isRefusal(v)
		}
		out.AddAttrs(a)
		return true
	})
	if refused {
		return nil
	}
	return h.Handler.Handle(ctx, out)
}

func (h mochiLog) WithAttrs(as []slog.Attr) slog.Handler {
	return mochiLog{h.Handler.WithAttrs(as), h.level}
}

func (h mochiLog) WithGroup(name string) slog.Handler {
	return mochiLog{h.Handler.WithGroup(name), h.level}
}

// isRefusal: err is how mochi ends a connection the hooks refused (a bad
// login, a publish the ACL refused), which the hooks logged.
func isRefusal(err error) bool {
	return errors.Is(err, packets.ErrBadUsernameOrPassword) || errors.Is(err, packets.ErrNotAuthorized)
}
