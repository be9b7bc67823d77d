package nats

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"

	"github.com/tmaflow/tmaflow/pkg/bus"
)

// Headers of the adapter's own. Metadata may not use these names, nor
// the Nats- prefix the server interprets.
const (
	// HeaderKey carries the record key (bus.Key).
	HeaderKey = "Tmaflow-Key"
	// HeaderUUID carries the Watermill message UUID; left out when it is
	// empty, so plain NATS consumers see only the contract headers.
	// Messages without it get "<topic>-<partition>-<stream sequence>",
	// stable across redeliveries.
	HeaderUUID = "Tmaflow-Uuid"
	// HeaderEncoded lists, comma-separated, the headers whose values are
	// base64 (std) because a NATS header line cannot carry them as they
	// are: line breaks, control bytes, invalid UTF-8, leading blanks.
	HeaderEncoded = "Tmaflow-Encoded"
)

// ErrHeaderName is wrapped by Publish for metadata whose name a NATS header
// cannot carry or that the adapter or server reserves.
var ErrHeaderName = errors.New("metadata name unusable as a NATS header")

// toNATS maps a message to a NATS message on subject. The payload is
// referenced, not copied: callers must not change it while publishing.
func toNATS(subject string, msg *message.Message) (*nats.Msg, error) {
	h := make(nats.Header, len(msg.Metadata)+1)
	var encoded []string
	set := func(name, value string) {
		if plain(value) {
			h[name] = []string{value}
			return
		}
		h[name] = []string{base64.StdEncoding.EncodeToString([]byte(value))}
		encoded = append(encoded, name)
	}
	for k, v := range msg.Metadata {
		if k == bus.MetadataKey {
			continue
		}
		if err := checkName(k); err != nil {
			return nil, err
		}
		set(k, v)
	}
	if k, ok := msg.Metadata[bus.MetadataKey]; ok {
		set(HeaderKey, k)
	}
	if msg.UUID != "" {
		set(HeaderUUID, msg.UUID)
	}
	if len(encoded) > 0 {
		slices.Sort(encoded)
		h[HeaderEncoded] = []string{strings.Join(encoded, ",")}
	}
	return &nats.Msg{Subject: subject, Header: h, Data: msg.Payload}, nil
}

// checkName refuses names that a header line cannot carry (a colon,
// blanks, control bytes), a comma (HeaderEncoded lists names
// comma-separated) and reserved ones.
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrHeaderName)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c >= 0x7f || c == ':' || c == ',' {
			return fmt.Errorf("%w: %q has byte %q", ErrHeaderName, name, c)
		}
	}
	for _, r := range []string{HeaderKey, HeaderUUID, HeaderEncoded} {
		if strings.EqualFold(name, r) {
			return fmt.Errorf("%w: %q is reserved by the adapter", ErrHeaderName, name)
		}
	}
	if len(name) >= 5 && strings.EqualFold(name[:5], "nats-") {
		return fmt.Errorf("%w: %q: the Nats- prefix is the server's", ErrHeaderName, name)
	}
	return nil
}

// plain reports whether a header line carries v unchanged.
func plain(v string) bool {
	if v != "" && (v[0] == ' ' || v[0] == '\t') {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' || c == 0x7f {
			return false
		}
	}
	return utf8.ValidString(v)
}

// fromNATS maps headers and data to a message; uuid is used when the
// headers carry none. A value that should be base64 and is not is kept as
// it came, and reported in err: the message is still delivered, nothing
// of it is dropped.
func fromNATS(h nats.Header, data []byte, uuid string) (msg *message.Message, err error) {
	encoded := map[string]bool{}
	for name := range strings.SplitSeq(last(h[HeaderEncoded]), ",") {
		if name != "" {
			encoded[name] = true
		}
	}
	var errs []error
	value := func(name string, vs []string) string {
		v := last(vs)
		if !encoded[name] {
			return v
		}
		b, derr := base64.StdEncoding.DecodeString(v)
		if derr != nil {
			errs = append(errs, fmt.Errorf("header %s: %w", name, derr))
			return v
		}
		return string(b)
	}
	md := make(message.Metadata, len(h))
	key, hasKey := "", false
	for name, vs := range h {
		switch {
		case name == HeaderEncoded:
		case name == HeaderKey:
			key, hasKey = value(name, vs), true
		case name == HeaderUUID:
			// An empty one is as good as none: the stable fallback stays.
			if v := value(name, vs); v != "" {
				uuid = v
			}
		case strings.HasPrefix(name, "Nats-"), name == bus.MetadataKey:
			// The server's (Nats-Msg-Id, Nats-Pin-Id…), not the record's;
			// the key comes from HeaderKey only.
		default:
			md[name] = value(name, vs)
		}
	}
	msg = message.NewMessage(uuid, data)
	msg.Metadata = md
	if hasKey {
		bus.SetKey(msg, []byte(key))
	}
	return msg, errors.Join(errs...)
}

// last is the last of repeated header values (as the Kafka adapter keeps
// the last of repeated headers).
func last(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// msgID is the Nats-Msg-Id of a message: a hash of what makes the record,
// so a publish retried with the same message is stored once within the
// stream's duplicate window, while distinct records never share an id.
// The subject is left out: a record without a key may be retried on
// another partition.
func msgID(m *nats.Msg) string {
	names := make([]string, 0, len(m.Header))
	for k := range m.Header {
		names = append(names, k)
	}
	slices.Sort(names)
	d := sha256.New()
	field := func(s []byte) {
		var n [8]byte
		l := uint64(len(s))
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		_, _ = d.Write(n[:])
		_, _ = d.Write(s)
	}
	for _, k := range names {
		field([]byte(k))
		field([]byte(last(m.Header[k])))
	}
	field(m.Data)
	var sum [sha256.Size]byte
	return hex.EncodeToString(d.Sum(sum[:0])[:16])
}
