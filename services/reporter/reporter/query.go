package reporter

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Querier is the part of the Prometheus query API a report reads.
type Querier interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...v1.Option) (model.Value, v1.Warnings, error)
	QueryRange(ctx context.Context, query string, r v1.Range, opts ...v1.Option) (model.Value, v1.Warnings, error)
}

// QuerierFor returns the querier of one tenant.
type QuerierFor func(tenant string) (Querier, error)

// NewQuerierFor returns queriers of cfg's API that send each tenant in
// cfg.TenantHeader and, if creds has the tenant's, its credentials.
func NewQuerierFor(cfg QueryConfig, creds map[string]Credentials, rt http.RoundTripper) QuerierFor {
	if rt == nil {
		rt = api.DefaultRoundTripper
	}
	return func(tenant string) (Querier, error) {
		trt := tenantRoundTripper{next: rt, header: cfg.TenantHeader, tenant: tenant}
		if c, ok := creds[tenant]; ok {
			trt.creds = &c
		}
		c, err := api.NewClient(api.Config{Address: cfg.URL, RoundTripper: trt})
		if err != nil {
			return nil, fmt.Errorf("query client %s: %w", cfg.URL, err)
		}
		return v1.NewAPI(c), nil
	}
}

// tenantRoundTripper sets the tenant header and credentials on every
// request.
type tenantRoundTripper struct {
	next   http.RoundTripper
	header string
	tenant string
	creds  *Credentials
}

func (t tenantRoundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.header == "" && t.creds == nil {
		return t.next.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	if t.header != "" {
		r.Header.Set(t.header, t.tenant)
	}
	if t.creds != nil {
		r.SetBasicAuth(t.creds.Username, t.creds.Password)
	}
	return t.next.RoundTrip(r)
}
