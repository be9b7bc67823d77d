package monitor

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/tmaflow/tmaflow/pkg/bus"
	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/ingest"
	"github.com/tmaflow/tmaflow/pkg/tma"
)

// Body buffers start at initialBufSize; larger ones are not pooled so a
// burst of big bodies does not pin memory.
const (
	initialBufSize = 8 << 10
	maxPooledBuf   = 256 << 10
)

func (s *Service) serveMonitor(w http.ResponseWriter, r *http.Request) {
	s.metrics.request(s.ingest(w, r))
}

// ingest handles one POST /monitor and returns the status code it answered.
func (s *Service) ingest(w http.ResponseWriter, r *http.Request) int {
	who, code := s.admit(w, r, false)
	if code != 0 {
		return code
	}
	defer s.release()
	tenant, probeID := who.tenant, who.probeID
	if !isJSON(r.Header.Get("Content-Type")) {
		return s.fail(w, http.StatusUnsupportedMediaType, s.resp.mediaType)
	}

	bp := s.bufs.Get().(*[]byte)
	defer s.putBuf(bp)
	body, code := s.readRequest(w, r, bp)
	if code != 0 {
		return code
	}

	msgs, err := tma.Decode(body)
	if err != nil {
		return s.fail(w, http.StatusBadRequest, badDataBody(err))
	}
	if probeID >= 0 {
		if fes, total := foreignMessages(msgs, probeID, isArray(body)); total > 0 {
			s.metrics.authFailures[authForbidden].Inc()
			return s.fail(w, http.StatusForbidden, errorBody(errForbidden,
				"messages of another probe: probeId must be "+strconv.FormatInt(probeID, 10)+"; nothing was accepted", fes, total))
		}
	}

	observations, err := s.publish(r.Context(), msgs, tenant)
	if errors.Is(err, bus.ErrTooLarge) {
		// Retrying cannot help: the broker's record limit is below this body's.
		return s.fail(w, http.StatusRequestEntityTooLarge, s.resp.recordTooLarge)
	}
	if err != nil {
		s.logger.Debug("publish request", "err", err, "messages", len(msgs))
		s.checkBrokerSoon()
		w.Header()["Retry-After"] = s.resp.retryAfter
		return s.fail(w, http.StatusServiceUnavailable, s.resp.unavailable)
	}
	s.metrics.messages.Add(float64(len(msgs)))
	s.metrics.observations.Add(float64(observations))
	// The body buffer is free again: the payloads were copied.
	*bp = appendOK(body[:0], len(msgs), observations)
	s.resp.write(w, http.StatusOK, *bp)
	return http.StatusOK
}

func (s *Service) fail(w http.ResponseWriter, code int, body []byte) int {
	s.resp.write(w, code, body)
	return code
}

func (s *Service) putBuf(bp *[]byte) {
	if cap(*bp) > maxPooledBuf {
		return
	}
	*bp = (*bp)[:0]
	s.bufs.Put(bp)
}

// publish sends every message to topic-monitor in one Publish and returns
// the number of observations once all were acknowledged.
func (s *Service) publish(ctx context.Context, msgs []tma.Message, tenant string) (int, error) {
	observations := 0
	for i := range msgs {
		observations += msgs[i].Observations()
	}
	out := ingest.MonitorRecords(tenant, contract.SourceHTTP, s.now().UnixNano(), msgs)
	if err := s.send(ctx, contract.TopicMonitor, out); err != nil {
		return 0, err
	}
	return observations, nil
}

// readBody reads r into buf, sized once from the Content-Length when known.
func readBody(r io.Reader, buf []byte, contentLength int64) ([]byte, error) {
	if contentLength > 0 && int64(cap(buf)) <= contentLength {
		// One byte more than announced, so reaching EOF needs no growth.
		buf = make([]byte, 0, contentLength+1)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// isJSON accepts an absent Content-Type (as TMA did), application/json and
// application/*+json, with any parameters.
func isJSON(ct string) bool {
	if ct == "" {
		return true
	}
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.TrimSpace(ct)
	const app = "application/"
	if len(ct) < len(app) || !strings.EqualFold(ct[:len(app)], app) {
		return false
	}
	sub := ct[len(app):]
	return strings.EqualFold(sub, "json") ||
		(len(sub) > len("+json") && strings.EqualFold(sub[len(sub)-len("+json"):], "+json"))
}

// isArray reports whether the body is a JSON array, which decides the
// path prefix of errors ("[2].probeId" or "probeId").
func isArray(body []byte) bool {
	for _, c := range body {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c == '['
	}
	return false
}

// foreignMessages lists the messages whose probeId is not the
// authenticated probe's (at most maxListedErrors) and counts them.
func foreignMessages(msgs []tma.Message, probeID int64, array bool) (fes []tma.FieldError, total int) {
	for i := range msgs {
		if msgs[i].ProbeID == probeID {
			continue
		}
		total++
		if len(fes) == maxListedErrors {
			continue
		}
		path := "probeId"
		if array {
			path = "[" + strconv.Itoa(i) + "].probeId"
		}
		fes = append(fes, tma.FieldError{Path: path, Message: "probe " + strconv.FormatInt(msgs[i].ProbeID, 10) +
			" is not the authenticated probe " + strconv.FormatInt(probeID, 10)})
	}
	return fes, total
}

// badDataBody renders a decode error: every field error with its path
// (tma.Decode bounds their number).
func badDataBody(err error) []byte {
	ve, ok := errors.AsType[*tma.ValidationError](err)
	if !ok || len(ve.Errors) == 0 {
		return errorBody(errBadData, err.Error()+"; nothing was accepted", []tma.FieldError{{Message: err.Error()}}, 1)
	}
	msg := strconv.Itoa(len(ve.Errors)) + " errors; nothing was accepted"
	if len(ve.Errors) == 1 {
		msg = ve.Errors[0].Error() + "; nothing was accepted"
	}
	return errorBody(errBadData, msg, ve.Errors, len(ve.Errors))
}
