package monitor

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/tmaflow/tmaflow/pkg/budget"
	"github.com/tmaflow/tmaflow/pkg/contract"
)

// What every ingest endpoint shares: the in-flight limit, the credentials
// and the bounded body read.

// principal is who sent a request: the tenant its data goes to and the
// probe it authenticated as (-1 when none: auth disabled or the anonymous
// tenant, which may send for any probe).
type principal struct {
	tenant  string
	probeID int64
}

// admit starts an ingest request: the method (POST, and PUT when put),
// the process's budgets, an in-flight slot and the credentials. It
// answers 405, 429, 503 or 401 itself and returns the code; on 0 the
// caller holds a slot and must release it.
func (s *Service) admit(w http.ResponseWriter, r *http.Request, put bool) (principal, int) {
	if r.Method != http.MethodPost && (!put || r.Method != http.MethodPut) {
		if put {
			w.Header()["Allow"] = s.resp.allowPush
			return principal{}, s.fail(w, http.StatusMethodNotAllowed, s.resp.methodPush)
		}
		w.Header()["Allow"] = s.resp.allowPost
		return principal{}, s.fail(w, http.StatusMethodNotAllowed, s.resp.method)
	}
	if code := s.withinBudget(w); code != 0 {
		return principal{}, code
	}
	if !s.acquire() {
		w.Header()["Retry-After"] = s.resp.retryAfter
		return principal{}, s.fail(w, http.StatusTooManyRequests, s.resp.overloaded)
	}
	who, code := s.authenticate(w, r)
	if code != 0 {
		s.release()
	}
	return who, code
}

// acquire takes an in-flight slot without waiting: a full server answers
// at once and the client backs off. Every true is followed by release.
func (s *Service) acquire() bool {
	select {
	case s.sem <- struct{}{}:
	default:
		return false
	}
	s.metrics.inflight.Inc()
	return true
}

func (s *Service) release() {
	s.metrics.inflight.Dec()
	<-s.sem
}

// authenticate finds the request's tenant from its credentials: HTTP Basic
// (user = probe id or name) or a bearer token "<probe>:<secret>" (what
// Prometheus sends for remote_write's authorization.credentials). Without
// credentials the request goes to the anonymous tenant when one is
// configured. It answers 401 itself and returns its code, else 0.
func (s *Service) authenticate(w http.ResponseWriter, r *http.Request) (principal, int) {
	if s.verifier == nil {
		return principal{tenant: contract.DefaultTenant, probeID: -1}, 0
	}
	user, secret, present, ok := credentials(r)
	if !present && s.cfg.Auth.AnonymousTenant != "" {
		s.metrics.anonymous.Inc()
		return principal{tenant: s.cfg.Auth.AnonymousTenant, probeID: -1}, 0
	}
	reason := authMissing
	if ok {
		if p, verified := s.verifier.Verify(user, secret); verified {
			return principal{tenant: p.Tenant, probeID: p.ID}, 0
		}
		reason = authInvalid
	}
	s.metrics.authFailures[reason].Inc()
	w.Header()["Www-Authenticate"] = s.resp.wwwAuthenticate
	return principal{}, s.fail(w, http.StatusUnauthorized, s.resp.unauthorized)
}

// credentials reads Basic or Bearer credentials. present reports an
// Authorization header at all; ok that it held a usable user and secret.
func credentials(r *http.Request) (user, secret string, present, ok bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", "", false, false
	}
	if user, secret, ok = r.BasicAuth(); ok {
		return user, secret, true, true
	}
	const bearer = "Bearer "
	if len(h) > len(bearer) && strings.EqualFold(h[:len(bearer)], bearer) {
		user, secret, ok = strings.Cut(strings.TrimSpace(h[len(bearer):]), ":")
		return user, secret, true, ok && user != ""
	}
	return "", "", true, false
}

// readRequest reads the body into the pooled buffer *bp (which then holds
// it), at most max-body-bytes. It answers 413 or 400 itself and returns
// the code, else 0.
func (s *Service) readRequest(w http.ResponseWriter, r *http.Request, bp *[]byte) ([]byte, int) {
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, s.fail(w, http.StatusRequestEntityTooLarge, s.resp.tooLarge)
	}
	body, err := readBody(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes), (*bp)[:0], r.ContentLength)
	*bp = body
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, s.fail(w, http.StatusRequestEntityTooLarge, s.resp.tooLarge)
		}
		s.logger.Debug("read request body", "err", err)
		return nil, s.fail(w, http.StatusBadRequest, errorBody(errBadData, "read body: "+err.Error(), nil, 0))
	}
	return body, 0
}

// withinBudget answers 429 (memory) or 503 (disk) with the budget's reason
// while the process refuses ingest, and returns that code; 0 otherwise.
func (s *Service) withinBudget(w http.ResponseWriter) int {
	err := s.admitBudget()
	if err == nil {
		return 0
	}
	var refusal *budget.Refusal
	code, typ := http.StatusServiceUnavailable, errUnavailable
	if errors.As(err, &refusal) && refusal.Status == http.StatusTooManyRequests {
		code, typ = http.StatusTooManyRequests, errOverloaded
	}
	s.metrics.budgetRefused.WithLabelValues(strconv.Itoa(code)).Inc()
	w.Header()["Retry-After"] = s.resp.retryAfter
	return s.fail(w, code, errorBody(typ, err.Error(), nil, 0))
}
