package monitor

import (
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/tmaflow/tmaflow/pkg/tma"
)

// Error types of error responses, in the style of the Prometheus HTTP API.
const (
	errBadData     = "bad_data"
	errUnauth      = "unauthorized"
	errForbidden   = "forbidden"
	errMethod      = "method_not_allowed"
	errTooLarge    = "too_large"
	errMediaType   = "unsupported_media_type"
	errOverloaded  = "overloaded"
	errUnavailable = "unavailable"
)

// maxListedErrors bounds the messages of another probe listed in a 403
// answer: a 1 MiB array must not produce a response many times its size.
const maxListedErrors = 100

// responses holds the headers and bodies that never change, built once so
// the hot path only writes them.
type responses struct {
	contentTypeJSON []string
	allowPost       []string
	allowPush       []string
	retryAfter      []string
	wwwAuthenticate []string

	unauthorized []byte
	method       []byte
	methodPush   []byte
	tooLarge     []byte
	// recordTooLarge: a message within the body limit that the broker
	// still refuses for its size.
	recordTooLarge []byte
	mediaType      []byte
	overloaded     []byte
	unavailable    []byte
}

func newResponses(cfg Config) *responses {
	secs := int64((cfg.RetryAfter + 999_999_999) / 1_000_000_000) // round up to whole seconds
	return &responses{
		contentTypeJSON: []string{"application/json"},
		allowPost:       []string{http.MethodPost},
		allowPush:       []string{http.MethodPost + ", " + http.MethodPut},
		retryAfter:      []string{strconv.FormatInt(max(secs, 1), 10)},
		wwwAuthenticate: []string{`Basic realm="tmaflow monitor", charset="UTF-8"`},
		unauthorized:    errorBody(errUnauth, "missing or wrong credentials: use HTTP Basic with the probe id or name and its secret (or Authorization: Bearer <probe>:<secret>)", nil, 0),
		method:          errorBody(errMethod, "method not allowed: use POST", nil, 0),
		methodPush:      errorBody(errMethod, "method not allowed: use POST or PUT (pushes only add samples: there are no push groups to delete)", nil, 0),
		tooLarge:        errorBody(errTooLarge, "request body larger than "+strconv.FormatInt(cfg.MaxBodyBytes, 10)+" bytes", nil, 0),
		recordTooLarge:  errorBody(errTooLarge, "a message or series is larger than the broker accepts for one record; send smaller ones", nil, 0),
		mediaType:       errorBody(errMediaType, "unsupported content type: send application/json", nil, 0),
		overloaded:      errorBody(errOverloaded, "too many requests in flight, retry later", nil, 0),
		unavailable:     errorBody(errUnavailable, "the message bus did not acknowledge the data, retry later", nil, 0),
	}
}

func (rs *responses) write(w http.ResponseWriter, code int, body []byte) {
	w.Header()["Content-Type"] = rs.contentTypeJSON
	w.WriteHeader(code)
	_, _ = w.Write(body) // the client went away; nothing to do
}

// errorBody renders {"status":"error","errorType":..,"error":..,"errors":[{"path":..,"message":..}]};
// total counts the errors before truncation; when larger than len(errs)
// it is given as errorCount.
func errorBody(typ, msg string, errs []tma.FieldError, total int) []byte {
	b := make([]byte, 0, 96+len(msg)+64*len(errs))
	b = append(b, `{"status":"error","errorType":`...)
	b = appendString(b, typ)
	b = append(b, `,"error":`...)
	b = appendString(b, msg)
	if errs != nil {
		b = append(b, `,"errors":[`...)
		for i, e := range errs {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"path":`...)
			b = appendString(b, e.Path)
			b = append(b, `,"message":`...)
			b = appendString(b, e.Message)
			b = append(b, '}')
		}
		b = append(b, ']')
		if total > len(errs) {
			b = append(b, `,"errorCount":`...)
			b = strconv.AppendInt(b, int64(total), 10)
		}
	}
	return append(b, '}')
}

// appendOK renders {"status":"ok","messages":N,"observations":M}.
func appendOK(b []byte, messages, observations int) []byte {
	b = append(b, `{"status":"ok","messages":`...)
	b = strconv.AppendInt(b, int64(messages), 10)
	b = append(b, `,"observations":`...)
	b = strconv.AppendInt(b, int64(observations), 10)
	return append(b, '}')
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does; U+2028 and U+2029 are escaped for JavaScript.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
