package persister

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/prometheus/common/model"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// metadataFile keeps the metric metadata across restarts, beside the TSDB
// (which does not index metadata for queries).
const metadataFile = "tmaflow-metadata.json"

// maxMetadataPerTenant bounds the metric families remembered per tenant,
// so a flood of distinct names cannot grow memory without end.
const maxMetadataPerTenant = 100_000

// metricMetadata is one entry of /api/v1/metadata.
type metricMetadata struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

// metadataStore remembers the metadata of every metric family per tenant,
// as the batches carried it, the latest winning.
type metadataStore struct {
	path string // "" keeps it in memory only

	mu     sync.RWMutex
	tenant map[string]map[string]metricMetadata // tenant → family → metadata
	dirty  bool
}

func newMetadataStore(dir string) (*metadataStore, error) {
	m := &metadataStore{tenant: map[string]map[string]metricMetadata{}}
	if dir == "" {
		return m, nil
	}
	m.path = filepath.Join(dir, metadataFile)
	b, err := os.ReadFile(m.path)
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read metadata %s: %w", m.path, err)
	}
	if err := json.Unmarshal(b, &m.tenant); err != nil {
		return nil, fmt.Errorf("read metadata %s: %w", m.path, err)
	}
	if m.tenant == nil {
		m.tenant = map[string]map[string]metricMetadata{}
	}
	return m, nil
}

// update records the metadata of b's series.
func (m *metadataStore) update(b *samples.Batch) {
	for i := range b.Series {
		s := &b.Series[i]
		if s.Metadata == nil {
			continue
		}
		name := ""
		for _, l := range s.Labels {
			if l.Name == model.MetricNameLabel {
				name = l.Value
				break
			}
		}
		if name == "" {
			continue
		}
		md := metricMetadata{Type: strings.ToLower(string(s.Metadata.Type)), Help: s.Metadata.Help, Unit: s.Metadata.Unit}
		if md.Type == "" {
			md.Type = string(model.MetricTypeUnknown)
		}
		family := familyName(name, s.Metadata.Type)
		m.mu.RLock()
		cur, ok := m.tenant[b.Tenant][family]
		m.mu.RUnlock()
		if ok && cur == md {
			continue
		}
		m.mu.Lock()
		t := m.tenant[b.Tenant]
		if t == nil {
			t = map[string]metricMetadata{}
			m.tenant[b.Tenant] = t
		}
		if _, exists := t[family]; exists || len(t) < maxMetadataPerTenant {
			t[family] = md
			m.dirty = true
		}
		m.mu.Unlock()
	}
}

// familyName strips the series suffixes of histograms and summaries, whose
// metadata belongs to the family.
func familyName(name string, t samples.MetricType) string {
	var suffixes []string
	switch t {
	case samples.Histogram, samples.GaugeHistogram:
		suffixes = []string{"_bucket", "_sum", "_count", "_created", "_gcount", "_gsum"}
	case samples.Summary:
		suffixes = []string{"_sum", "_count", "_created"}
	}
	for _, s := range suffixes {
		if base, ok := strings.CutSuffix(name, s); ok && base != "" {
			return base
		}
	}
	return name
}

// query returns the tenant's metadata as /api/v1/metadata shapes it:
// family → entries. metric selects one family; limit bounds the families
// (negative: all).
func (m *metadataStore) query(tenant, metric string, limit int) map[string][]metricMetadata {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := map[string][]metricMetadata{}
	t := m.tenant[tenant]
	if metric != "" {
		if md, ok := t[metric]; ok && limit != 0 {
			out[metric] = []metricMetadata{md}
		}
		return out
	}
	for name, md := range t {
		if limit >= 0 && len(out) >= limit {
			break
		}
		out[name] = []metricMetadata{md}
	}
	return out
}

// flush writes the store to its file if it changed, atomically.
func (m *metadataStore) flush() error {
	if m.path == "" {
		return nil
	}
	m.mu.Lock()
	if !m.dirty {
		m.mu.Unlock()
		return nil
	}
	b, err := json.Marshal(m.tenant)
	m.dirty = false
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encode metadata: %w", err)
	}
	tmp := m.path + ".tmp"
	err = os.WriteFile(tmp, b, 0o644)
	if err == nil {
		err = os.Rename(tmp, m.path)
	}
	if err != nil {
		m.mu.Lock()
		m.dirty = true // try again at the next flush
		m.mu.Unlock()
		return fmt.Errorf("write metadata %s: %w", m.path, err)
	}
	return nil
}
