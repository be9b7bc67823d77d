package labeler

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"

	"github.com/tmaflow/tmaflow/pkg/registry"
	"github.com/tmaflow/tmaflow/pkg/samples"
	"github.com/tmaflow/tmaflow/pkg/tma"
)

// snapshot is one loaded registry file, compiled for the hot path. It is
// immutable: a reload builds a new one and swaps the pointer, so a record
// is mapped with one consistent registry while the next may see another.
type snapshot struct {
	file     *registry.File
	path     string
	sha256   string
	loadedAt time.Time

	probes       map[int64]*registry.Probe
	resources    map[int64]*resource
	descriptions map[int64]*description
	rules        []*relabel.Config
}

type resource struct {
	*registry.Resource
	labels []samples.Label // extra labels, sorted by name
}

type description struct {
	*registry.Description
	meta samples.Metadata
	// other names the series of data items whose type is not the
	// description's: TMA probes send a measurement and an event under one
	// descriptionId (the reference demo does), and they must not share a
	// series, or one of each timestamp pair would be refused.
	other     string
	otherMeta samples.Metadata
}

// series returns the name and metadata of the series of a data item of type t.
func (d *description) series(t tma.DataType) (string, *samples.Metadata) {
	if t == d.Type {
		return d.Metric, &d.meta
	}
	return d.other, &d.otherMeta
}

// loadSnapshot reads and compiles the registry file at path.
func loadSnapshot(path string, now time.Time) (*snapshot, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read registry %s: %w", path, err)
	}
	return parseSnapshot(path, data, now)
}

// parseSnapshot compiles the content of the registry file at path.
func parseSnapshot(path string, data []byte, now time.Time) (*snapshot, error) {
	f, err := registry.Parse(path, data)
	if err != nil {
		return nil, fmt.Errorf("read registry %s: %w", path, err)
	}
	s, err := newSnapshot(f)
	if err != nil {
		return nil, fmt.Errorf("read registry %s: %w", path, err)
	}
	s.path, s.sha256, s.loadedAt = path, sha256Hex(data), now
	return s, nil
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// newSnapshot indexes f and compiles its label rules.
func newSnapshot(f *registry.File) (*snapshot, error) {
	s := &snapshot{
		file:         f,
		probes:       make(map[int64]*registry.Probe, len(f.Probes)),
		resources:    make(map[int64]*resource, len(f.Resources)),
		descriptions: make(map[int64]*description, len(f.Descriptions)),
	}
	for i := range f.Probes {
		s.probes[f.Probes[i].ID] = &f.Probes[i]
	}
	for i := range f.Resources {
		r := &resource{Resource: &f.Resources[i]}
		for k, v := range r.Labels {
			if v != "" { // an empty label is an absent one
				r.labels = append(r.labels, samples.Label{Name: k, Value: v})
			}
		}
		slices.SortFunc(r.labels, func(a, b samples.Label) int { return strings.Compare(a.Name, b.Name) })
		s.resources[r.ID] = r
	}
	for i := range f.Descriptions {
		d := &description{Description: &f.Descriptions[i]}
		d.meta = samples.Metadata{Type: samples.Gauge, Unit: d.Unit, Help: d.Help}
		if d.Type == tma.Measurement && d.Kind == registry.KindCounter {
			d.meta.Type = samples.Counter
		}
		otherType := tma.Event
		if d.Type == tma.Event {
			otherType = tma.Measurement
		}
		d.other = registry.MetricName(registry.Description{Name: d.Name, Unit: d.Unit, Type: otherType, Kind: registry.KindGauge})
		d.otherMeta = samples.Metadata{Type: samples.Gauge, Unit: d.Unit, Help: d.Help}
		s.descriptions[d.ID] = d
	}
	var errs registry.ErrorList
	for _, r := range f.LabelRules {
		c, err := compileRule(r)
		if err != nil {
			errs = append(errs, r.Errorf("%v", err))
			continue
		}
		s.rules = append(s.rules, c)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return s, nil
}

// compileRule builds the Prometheus relabel config of a rule. The registry
// parser checked the rule already; Validate is the relabel package's own
// word on it.
func compileRule(r registry.LabelRule) (*relabel.Config, error) {
	re, err := relabel.NewRegexp(r.Regex)
	if err != nil {
		return nil, fmt.Errorf("regex: %w", err)
	}
	c := &relabel.Config{
		Separator:            r.Separator,
		Regex:                re,
		Modulus:              r.Modulus,
		TargetLabel:          r.TargetLabel,
		Replacement:          r.Replacement,
		Action:               relabel.Action(r.Action),
		NameValidationScheme: model.UTF8Validation,
	}
	for _, l := range r.SourceLabels {
		c.SourceLabels = append(c.SourceLabels, model.LabelName(l))
	}
	if r.Regex == relabel.DefaultRelabelConfig.Regex.String() {
		// Validate tells defaults apart by identity (keepequal/dropequal
		// take no regex).
		c.Regex = relabel.DefaultRelabelConfig.Regex
	}
	if err := c.Validate(model.UTF8Validation); err != nil {
		return nil, err
	}
	return c, nil
}
