package monitor

import (
	"sync"

	"github.com/tmaflow/tmaflow/pkg/ingest"
	"github.com/tmaflow/tmaflow/pkg/samples"
)

// maxCachedFamilies bounds the metric families cached per tenant; beyond
// it new families are not cached (their samples then go without metadata,
// as before the cache).
const maxCachedFamilies = 10_000

// metadataCache keeps, per tenant, the metric metadata remote write 1.0
// senders send apart from their samples (Prometheus sends it in requests
// of its own, once a minute), so the series of later requests carry it.
type metadataCache struct {
	mu       sync.RWMutex
	byTenant map[string]map[string]*samples.Metadata
}

// update stores a request's metadata by family name.
func (c *metadataCache) update(tenant string, families map[string]*samples.Metadata) {
	if len(families) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byTenant == nil {
		c.byTenant = map[string]map[string]*samples.Metadata{}
	}
	m := c.byTenant[tenant]
	if m == nil {
		m = make(map[string]*samples.Metadata, len(families))
		c.byTenant[tenant] = m
	}
	for name, md := range families {
		if _, ok := m[name]; ok || len(m) < maxCachedFamilies {
			m[name] = md
		}
	}
}

// fill gives series without metadata the tenant's cached metadata of
// their family.
func (c *metadataCache) fill(tenant string, series []samples.Series) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m := c.byTenant[tenant]
	if len(m) == 0 {
		return
	}
	for i := range series {
		if series[i].Metadata == nil {
			series[i].Metadata = ingest.FamilyMetadata(m, ingest.MetricName(series[i].Labels))
		}
	}
}
