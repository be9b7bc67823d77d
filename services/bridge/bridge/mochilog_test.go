package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"
)

// logLine is a record a capture handler took, its attributes as text.
type logLine struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// capture is a slog handler that keeps every record.
type capture struct {
	mu    *sync.Mutex
	lines *[]logLine
	with  []slog.Attr
}

func newCapture() capture { return capture{mu: &sync.Mutex{}, lines: &[]logLine{}} }

func (c capture) Enabled(context.Context, slog.Level) bool { return true }

func (c capture) Handle(_ context.Context, r slog.Record) error {
	l := logLine{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	add := func(a slog.Attr) bool {
		l.attrs[a.Key] = a.Value.String()
		return true
	}
	for _, a := range c.with {
		add(a)
	}
	r.Attrs(add)
	c.mu.Lock()
	defer c.mu.Unlock()
	*c.lines = append(*c.lines, l)
	return nil
}

func (c capture) WithAttrs(as []slog.Attr) slog.Handler {
	c.with = append(slices.Clip(c.with), as...)
	return c
}

func (c capture) WithGroup(string) slog.Handler { return c }

// since returns the lines at level or above from the n-th on.
func (c capture) since(n int, level slog.Level) []logLine {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []logLine
	for _, l := range (*c.lines)[n:] {
		if l.level >= level {
			out = append(out, l)
		}
	}
	return out
}

func (c capture) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(*c.lines)
}

// TestMochiLog: the records mochi logs about refusals are dropped (the
// hooks log them), others lose their packet dump and get a message.
func TestMochiLog(t *testing.T) {
	publish := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, TopicName: "acme/d1/temp", Payload: []byte("21.5")}
	tests := []struct {
		name  string
		level slog.Level
		msg   string
		args  []any
		want  *logLine // nil: dropped
	}{
		{name: "refused login, no message", level: slog.LevelWarn, args: []any{"error", packets.ErrBadUsernameOrPassword}},
		{name: "refused publish ends the connection", level: slog.LevelWarn, args: []any{"error", packets.ErrNotAuthorized}},
		{name: "refused publish with its packet", level: slog.LevelWarn, msg: "error processing packet",
			args: []any{"error", packets.ErrNotAuthorized, "client", "beta1", "listener", "tcp", "pk", publish}},
		{name: "wrapped refusal", level: slog.LevelWarn, args: []any{"error", fmt.Errorf("send: %w", packets.ErrNotAuthorized)}},
		{name: "other error without message", level: slog.LevelWarn, args: []any{"error", io.ErrUnexpectedEOF},
			want: &logLine{level: slog.LevelWarn, msg: mochiNoMessage, attrs: map[string]string{"error": "unexpected EOF"}}},
		{name: "other packet error without the packet", level: slog.LevelWarn, msg: "error processing packet",
			args: []any{"error", packets.ErrProtocolViolation, "client", "c1", "pk", publish},
			want: &logLine{level: slog.LevelWarn, msg: "error processing packet", attrs: map[string]string{
				"error": packets.ErrProtocolViolation.Error(), "client": "c1", "packet_type": "Publish", "topic": "acme/d1/temp"}}},
		{name: "info dropped", level: slog.LevelInfo, msg: "added hook", args: []any{"hook", "x"}},
		{name: "error kept", level: slog.LevelError, msg: "listener type unavailable by config", args: []any{"listener", "ws", "error", errors.New("x")},
			want: &logLine{level: slog.LevelError, msg: "listener type unavailable by config", attrs: map[string]string{"listener": "ws", "error": "x"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCapture()
			slog.New(mochiLog{c, slog.LevelWarn}).Log(context.Background(), tc.level, tc.msg, tc.args...)
			got := c.since(0, slog.LevelDebug)
			if tc.want == nil {
				require.Empty(t, got)
				return
			}
			require.Equal(t, []logLine{*tc.want}, got)
		})
	}
}

// TestRefusalsLogOneLine: a refused client or publish logs one concise
// warning of the bridge's, and nothing else at warn: no empty message,
// no packet dump.
func TestRefusalsLogOneLine(t *testing.T) {
	const acmeTopic = "acme/sites/s1/devices/d1/metrics/temp"
	tests := []struct {
		name string
		do   func(t *testing.T, addr string)
		want logLine
		// wantRemote: the line also has the client's address.
		wantRemote bool
	}{
		{name: "wrong password",
			do: func(t *testing.T, addr string) {
				_, err := tryConnect(addr, "intruder", "acme-device", "wrong")
				require.Error(t, err)
			},
			want: logLine{level: slog.LevelWarn, msg: "mqtt client refused", attrs: map[string]string{
				"client": "intruder", "username": "acme-device", "reason": "bad username or password"}},
			wantRemote: true},
		{name: "no username",
			do: func(t *testing.T, addr string) {
				_, err := tryConnect(addr, "nobody", "", "")
				require.Error(t, err)
			},
			want: logLine{level: slog.LevelWarn, msg: "mqtt client refused", attrs: map[string]string{
				"client": "nobody", "username": "", "reason": "bad username or password"}},
			wantRemote: true},
		{name: "publish into another tenant, mqtt 3.1.1 qos 1",
			do: func(t *testing.T, addr string) {
				c := connect(t, addr, "beta1", "beta-device", "beta-secret")
				c.Publish(acmeTopic, 1, false, "1").WaitTimeout(time.Second)
			},
			want: logLine{level: slog.LevelWarn, msg: "mqtt publish refused", attrs: map[string]string{
				"client": "beta1", "username": "beta-device", "topic": acmeTopic, "reason": "topic outside the tenant's prefix"}}},
		{name: "publish into another tenant, mqtt 5 qos 1",
			do: func(t *testing.T, addr string) {
				out, err := mosquittoPub(t, addr, "-V", "mqttv5", "-q", "1", "-i", "beta5", "-u", "beta-device", "-P", "beta-secret", "-t", acmeTopic, "-m", "1")
				t.Logf("mosquitto_pub: %v %s", err, out)
			},
			want: logLine{level: slog.LevelWarn, msg: "mqtt publish refused", attrs: map[string]string{
				"client": "beta5", "username": "beta-device", "topic": acmeTopic, "reason": "topic outside the tenant's prefix"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logs := newCapture()
			b := startBridgeWith(t, testConfig(t), newFakeBus(), Options{Logger: slog.New(logs)})
			from := logs.len()
			tc.do(t, b.MQTTAddr())
			require.Eventually(t, func() bool { return len(logs.since(from, slog.LevelWarn)) > 0 }, 5*time.Second, 10*time.Millisecond)
			// mochi's lines would follow within milliseconds.
			require.Never(t, func() bool { return len(logs.since(from, slog.LevelWarn)) != 1 }, 300*time.Millisecond, 10*time.Millisecond,
				"one warning: %+v", logs.since(from, slog.LevelWarn))
			got := logs.since(from, slog.LevelWarn)[0]
			if tc.wantRemote {
				require.NotEmpty(t, got.attrs["remote"])
				delete(got.attrs, "remote")
			}
			require.Equal(t, tc.want, got)
		})
	}
}
