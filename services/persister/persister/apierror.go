package persister

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/prometheus/promql"
)

// Error types of the API, as Prometheus names them.
const (
	errorBadData   = "bad_data"
	errorExec      = "execution"
	errorTimeout   = "timeout"
	errorCanceled  = "canceled"
	errorInternal  = "internal"
	errorNotFound  = "not_found"
	errorAuth      = "unauthorized" // ours: Prometheus has no authentication
	errorForbidden = "forbidden"    // ours
)

// statusClientClosedConnection is nginx's code, which Prometheus uses for
// canceled queries.
const statusClientClosedConnection = 499

type apiError struct {
	typ string
	err error
}

func badData(err error) *apiError { return &apiError{errorBadData, err} }

func invalidParam(err error, name string) apiResult {
	return apiResult{err: badData(fmt.Errorf("invalid parameter %q: %w", name, err))}
}

func (s *Service) writeError(w http.ResponseWriter, code int, e *apiError) int {
	b, err := response{Status: "error", ErrorType: e.typ, Error: e.err.Error()}.encode()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if _, err := w.Write(b); err != nil {
		s.logger.Debug("write api error", "err", err)
	}
	return code
}

// errorCode is Prometheus' status code of an error type.
func errorCode(typ string) int {
	switch typ {
	case errorBadData:
		return http.StatusBadRequest
	case errorExec:
		return http.StatusUnprocessableEntity
	case errorCanceled:
		return statusClientClosedConnection
	case errorTimeout:
		return http.StatusServiceUnavailable
	case errorNotFound:
		return http.StatusNotFound
	default:
		return http.StatusInternalServerError
	}
}

// queryAPIError classifies an error of query evaluation as Prometheus does.
func queryAPIError(err error) *apiError {
	var (
		eqc promql.ErrQueryCanceled
		eqt promql.ErrQueryTimeout
		es  promql.ErrStorage
	)
	switch {
	case errors.As(err, &eqc):
		return &apiError{errorCanceled, err}
	case errors.As(err, &eqt):
		return &apiError{errorTimeout, err}
	case errors.As(err, &es):
		return &apiError{errorInternal, err}
	case errors.Is(err, context.Canceled):
		return &apiError{errorCanceled, err}
	}
	return &apiError{errorExec, err}
}
