// Package registry reads the registry file, shaped like the TMA knowledge
// base: probes with their credential hash and tenant, resources with their
// extra labels, descriptions with the metric names they map to, and the
// label rules applied to every series. It verifies probe credentials
// cheaply enough for the ingest hot path.
package registry

import (
	"cmp"
	"fmt"
	"os"
	"slices"

	"github.com/tmaflow/tmaflow/pkg/tma"
)

// File is the content of a registry file.
type File struct {
	Probes       []Probe       `json:"probes"`
	Resources    []Resource    `json:"resources"`
	Descriptions []Description `json:"descriptions"`
	// LabelRules relabel every series the labeler publishes, in order.
	LabelRules []LabelRule `json:"label_rules"`
}

// Probe is a client allowed to post monitoring data.
type Probe struct {
	ID     int64  `json:"id"`
	Name   string `json:"name"`
	Tenant string `json:"tenant"` // contract.DefaultTenant when the file leaves it out
	// SecretHash is a bcrypt or argon2id (PHC string) hash of the secret.
	// Never marshalled: registry dumps must not hand out material for
	// offline guessing.
	SecretHash string `json:"-"`
}

// Resource is a monitored thing (a host, a container, a device).
type Resource struct {
	ID      int64             `json:"id"`
	Name    string            `json:"name"`
	Type    string            `json:"type,omitempty"`
	Address string            `json:"address,omitempty"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// Description names and types what a descriptionId measures.
type Description struct {
	ID   int64        `json:"id"`
	Name string       `json:"name"`
	Unit string       `json:"unit,omitempty"` // normalised: "%" reads as percent
	Type tma.DataType `json:"type"`
	// Kind is gauge or counter for measurements, empty for events.
	Kind Kind   `json:"kind,omitempty"`
	Help string `json:"help,omitempty"`
	// Metric is the series name, from the file's metric key or else
	// derived from name, unit, kind and type (see MetricName).
	Metric string `json:"metric"`
}

// Load reads and validates the registry file at path.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read registry %s: %w", path, err)
	}
	f, err := Parse(path, data)
	if err != nil {
		return nil, fmt.Errorf("read registry %s: %w", path, err)
	}
	return f, nil
}

// Parse decodes and validates a registry file; name is used in errors.
// Unknown keys, duplicate ids or names, and bad hashes are errors
// (an ErrorList).
func Parse(name string, data []byte) (*File, error) {
	p := &parser{file: name}
	f := p.parse(data)
	if len(p.errs) > 0 {
		slices.SortStableFunc(p.errs, func(a, b *Error) int {
			return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
		})
		return nil, p.errs
	}
	return f, nil
}
