package persister

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/registry"
)

// verifier checks probe credentials (*registry.Registry).
type verifier interface {
	Verify(user, secret string) (registry.Probe, bool)
	Reload() error
}

// Reasons an API request is refused before it reaches the TSDB.
const (
	authMissing   = "missing"
	authInvalid   = "invalid"
	authForbidden = "forbidden"
)

// authError is a refused request: status, errorType and message.
type authError struct {
	status int
	reason string
	err    error
}

func (e *authError) Error() string { return e.err.Error() }

// tenantOf maps a request to its tenant. HTTP Basic credentials, when a
// registry is configured, are checked and give the probe's tenant; a
// tenant header beside them must name the same tenant. Without
// credentials the header is trusted (an authenticating proxy sets it),
// and without either the default tenant applies, if there is one.
func (s *Service) tenantOf(r *http.Request) (string, *authError) {
	header := ""
	if s.cfg.API.TenantHeader != "" {
		header = r.Header.Get(s.cfg.API.TenantHeader)
	}
	if user, pass, ok := r.BasicAuth(); ok && s.verifier != nil {
		p, ok := s.verifier.Verify(user, pass)
		if !ok {
			return "", &authError{http.StatusUnauthorized, authInvalid, errors.New("invalid credentials")}
		}
		if header != "" && header != p.Tenant {
			return "", &authError{http.StatusForbidden, authForbidden,
				fmt.Errorf("%s %q is not the tenant of the credentials", s.cfg.API.TenantHeader, header)}
		}
		return p.Tenant, nil
	}
	if header != "" {
		if !contract.ValidTenant(header) {
			return "", &authError{http.StatusUnauthorized, authInvalid, fmt.Errorf("invalid tenant in %s", s.cfg.API.TenantHeader)}
		}
		return header, nil
	}
	if s.cfg.API.DefaultTenant != "" {
		return s.cfg.API.DefaultTenant, nil
	}
	var ways []string
	if s.cfg.API.TenantHeader != "" {
		ways = append(ways, "a "+s.cfg.API.TenantHeader+" header")
	}
	if s.verifier != nil {
		ways = append(ways, "probe credentials (HTTP Basic)")
	}
	if len(ways) == 0 {
		// Validate does not forbid this configuration; say what fixes it.
		return "", &authError{http.StatusUnauthorized, authMissing, errors.New("no tenant: configure api.default-tenant, api.tenant-header or api.auth.registry")}
	}
	msg := "no tenant: send " + ways[0]
	if len(ways) > 1 {
		msg += " or " + ways[1]
	}
	return "", &authError{http.StatusUnauthorized, authMissing, errors.New(msg)}
}

// tenantQueryable confines every querier it opens to one tenant.
//
// The confinement sits at the storage.Querier boundary rather than in the
// parsed expression: the PromQL engine reaches series only through
// Select, once per selector of the expression whatever the nesting
// (subqueries, @ and offset modifiers, functions selecting more series),
// and the series, labels and label-values endpoints go through the same
// querier — so no path sees a series without the tenant matcher.
type tenantQueryable struct {
	storage.Queryable
	tenant string
}

func (q tenantQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	inner, err := q.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return tenantQuerier{Querier: inner, tenant: labels.MustNewMatcher(labels.MatchEqual, TenantLabel, q.tenant)}, nil
}

type tenantQuerier struct {
	storage.Querier
	tenant *labels.Matcher
}

// enforce replaces every tenant matcher of ms with the caller's.
func (q tenantQuerier) enforce(ms []*labels.Matcher) []*labels.Matcher {
	out := make([]*labels.Matcher, 0, len(ms)+1)
	for _, m := range ms {
		if m.Name != TenantLabel {
			out = append(out, m)
		}
	}
	return append(out, q.tenant)
}

func (q tenantQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return q.Querier.Select(ctx, sortSeries, hints, q.enforce(ms)...)
}

func (q tenantQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.Querier.LabelValues(ctx, name, hints, q.enforce(ms)...)
}

func (q tenantQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return q.Querier.LabelNames(ctx, hints, q.enforce(ms)...)
}
