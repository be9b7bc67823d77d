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
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tmaflow/tmaflow/pkg/contract"
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

// Error is one problem in a registry file, located by line, column and field.
type Error struct {
	File   string
	Line   int
	Column int
	Field  string // e.g. probes[1].secret_hash
	Msg    string
}

func (e *Error) Error() string {
	pos := fmt.Sprintf("%s:%d", e.File, e.Line)
	if e.Column > 0 {
		pos += ":" + strconv.Itoa(e.Column)
	}
	if e.Field == "" {
		return pos + ": " + e.Msg
	}
	return pos + ": " + e.Field + ": " + e.Msg
}

// ErrorList is every problem found in a registry file, in file order.
type ErrorList []*Error

func (l ErrorList) Error() string {
	parts := make([]string, len(l))
	for i, e := range l {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
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

type parser struct {
	file string
	errs ErrorList
	// where each accepted entry came from, for duplicate errors
	probePos, resourcePos, descriptionPos []position
}

func (p *parser) errorf(n *yaml.Node, field, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: n.Line, Column: n.Column, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) parse(data []byte) *File {
	f := &File{}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := yamlErr(err)
		p.errs = append(p.errs, &Error{File: p.file, Line: line, Msg: msg})
		return nil
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return f // empty file: no probes, so nobody can post
	}
	root := deref(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return f
	}
	p.mapping(root, "", func(key string, k, v *yaml.Node) bool {
		switch key {
		case "probes":
			p.sequence(v, key, func(field string, n *yaml.Node) { p.probe(f, field, n) })
		case "resources":
			p.sequence(v, key, func(field string, n *yaml.Node) { p.resource(f, field, n) })
		case "descriptions":
			p.sequence(v, key, func(field string, n *yaml.Node) { p.description(f, field, n) })
		case "label_rules":
			p.sequence(v, key, func(field string, n *yaml.Node) { p.labelRule(f, field, n) })
		default:
			return false
		}
		return true
	})
	p.unique(f)
	return f
}

// yamlErr splits a yaml syntax error ("yaml: line 3: did not find ...")
// into its line and message.
func yamlErr(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	rest, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return 0, msg
	}
	num, text, ok := strings.Cut(rest, ": ")
	n, convErr := strconv.Atoi(num)
	if !ok || convErr != nil {
		return 0, msg
	}
	return n, text
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// mapping walks a mapping node, rejecting duplicate keys and keys for
// which fn reports false (unknown).
func (p *parser) mapping(n *yaml.Node, field string, fn func(key string, k, v *yaml.Node) bool) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, field, "want a mapping, got %s", kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], deref(n.Content[i+1])
		if seen[k.Value] {
			p.errorf(k, join(field, k.Value), "duplicate key")
			continue
		}
		seen[k.Value] = true
		if !fn(k.Value, k, v) {
			p.errorf(k, join(field, k.Value), "unknown field")
		}
	}
}

func (p *parser) sequence(n *yaml.Node, field string, fn func(field string, n *yaml.Node)) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, field, "want a list, got %s", kindName(n))
		return
	}
	for i, item := range n.Content {
		fn(fmt.Sprintf("%s[%d]", field, i), deref(item))
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("scalar %q", n.Value)
	default:
		return "nothing"
	}
}

func (p *parser) str(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		p.errorf(n, field, "want a string, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func (p *parser) id(n *yaml.Node, field string) (int64, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		p.errorf(n, field, "want an integer >= 0, got %s", kindName(n))
		return 0, false
	}
	var v int64
	if err := n.Decode(&v); err != nil || v < 0 {
		p.errorf(n, field, "want an integer >= 0, got %q", n.Value)
		return 0, false
	}
	return v, true
}

// required reports missing keys; names is the set the entry must have.
func (p *parser) required(n *yaml.Node, field string, have map[string]bool, names ...string) bool {
	ok := true
	for _, name := range names {
		if !have[name] {
			p.errorf(n, join(field, name), "missing")
			ok = false
		}
	}
	return ok
}

// positions remembers where each entry came from, for duplicate errors.
type position struct {
	field    string
	id, name *yaml.Node
	// descriptions only: where the kind and the metric name came from
	kind, metric *yaml.Node
}

func (p *parser) probe(f *File, field string, n *yaml.Node) {
	var pr Probe
	var pos position
	have := map[string]bool{}
	good := true
	p.mapping(n, field, func(key string, k, v *yaml.Node) bool {
		var ok bool
		switch key {
		case "id":
			pr.ID, ok = p.id(v, join(field, key))
		case "name":
			if pr.Name, ok = p.str(v, join(field, key)); ok {
				ok = p.probeName(v, join(field, key), pr.Name)
			}
		case "tenant":
			if pr.Tenant, ok = p.str(v, join(field, key)); ok && pr.Tenant == "" {
				p.errorf(v, join(field, key), "must not be empty (leave it out for %q)", contract.DefaultTenant)
				ok = false
			}
		case "secret_hash":
			if pr.SecretHash, ok = p.str(v, join(field, key)); ok {
				if _, err := parseHash(pr.SecretHash); err != nil {
					p.errorf(v, join(field, key), "%v", err)
					ok = false
				}
			}
		default:
			return false
		}
		have[key] = true
		good = good && ok
		switch key {
		case "id":
			pos.id = v
		case "name":
			pos.name = v
		}
		return true
	})
	if n.Kind != yaml.MappingNode {
		return
	}
	if !p.required(n, field, have, "id", "name", "secret_hash") || !good {
		return
	}
	if pr.Tenant == "" {
		pr.Tenant = contract.DefaultTenant
	}
	f.Probes = append(f.Probes, pr)
	pos.field = field
	p.probePos = append(p.probePos, pos)
}

// probeName rejects names that read as a probe id: HTTP Basic takes either,
// and "7" must not mean two probes.
func (p *parser) probeName(n *yaml.Node, field, name string) bool {
	if name == "" {
		p.errorf(n, field, "must not be empty")
		return false
	}
	if _, err := strconv.ParseUint(name, 10, 64); err == nil {
		p.errorf(n, field, "must not be a number (HTTP Basic accepts ids and names alike)")
		return false
	}
	if strings.Contains(name, ":") {
		p.errorf(n, field, "must not contain ':' (HTTP Basic separator)")
		return false
	}
	return true
}

func (p *parser) resource(f *File, field string, n *yaml.Node) {
	var r Resource
	var pos position
	have := map[string]bool{}
	good := true
	p.mapping(n, field, func(key string, k, v *yaml.Node) bool {
		var ok bool
		switch key {
		case "id":
			r.ID, ok = p.id(v, join(field, key))
		case "name":
			if r.Name, ok = p.str(v, join(field, key)); ok && r.Name == "" {
				p.errorf(v, join(field, key), "must not be empty")
				ok = false
			}
		case "type":
			r.Type, ok = p.str(v, join(field, key))
		case "address":
			r.Address, ok = p.str(v, join(field, key))
		case "labels":
			r.Labels, ok = p.labels(v, join(field, key))
			for _, k := range v.Content {
				if v.Kind == yaml.MappingNode && reservedLabel(k.Value) && r.Labels != nil {
					if _, isKey := r.Labels[k.Value]; isKey {
						p.errorf(k, join(join(field, key), k.Value), "reserved: the labeler sets %s itself", k.Value)
						ok = false
					}
				}
			}
		default:
			return false
		}
		have[key] = true
		good = good && ok
		switch key {
		case "id":
			pos.id = v
		case "name":
			pos.name = v
		}
		return true
	})
	if n.Kind != yaml.MappingNode {
		return
	}
	if !p.required(n, field, have, "id", "name") || !good {
		return
	}
	f.Resources = append(f.Resources, r)
	pos.field = field
	p.resourcePos = append(p.resourcePos, pos)
}

func (p *parser) labels(n *yaml.Node, field string) (map[string]string, bool) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil, true
	}
	labels := map[string]string{}
	ok := true
	p.mapping(n, field, func(key string, k, v *yaml.Node) bool {
		if !validLabelName(key) {
			p.errorf(k, join(field, key), "invalid label name: want [a-zA-Z_][a-zA-Z0-9_]*, not starting with __")
			ok = false
			return true
		}
		val, good := p.str(v, join(field, key))
		ok = ok && good
		labels[key] = val
		return true
	})
	return labels, ok && n.Kind == yaml.MappingNode
}

// validLabelName follows Prometheus' label name rule; names starting with
// __ are reserved for internal use.
func validLabelName(s string) bool {
	if s == "" || strings.HasPrefix(s, "__") {
		return false
	}
	for i, c := range s {
		if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}

func (p *parser) description(f *File, field string, n *yaml.Node) {
	var d Description
	var pos position
	have := map[string]bool{}
	good := true
	p.mapping(n, field, func(key string, k, v *yaml.Node) bool {
		var ok bool
		switch key {
		case "id":
			d.ID, ok = p.id(v, join(field, key))
		case "name":
			if d.Name, ok = p.str(v, join(field, key)); ok && d.Name == "" {
				p.errorf(v, join(field, key), "must not be empty")
				ok = false
			}
		case "unit":
			var u string
			if u, ok = p.str(v, join(field, key)); ok {
				var err error
				if d.Unit, err = NormalizeUnit(u); err != nil {
					p.errorf(v, join(field, key), "%v", err)
					ok = false
				}
			}
		case "kind":
			var k string
			if k, ok = p.str(v, join(field, key)); ok {
				d.Kind = Kind(k)
				if d.Kind != KindGauge && d.Kind != KindCounter {
					p.errorf(v, join(field, key), "want %s or %s, got %q", KindGauge, KindCounter, k)
					ok = false
				}
			}
			pos.kind = v
		case "help":
			d.Help, ok = p.str(v, join(field, key))
		case "metric":
			if d.Metric, ok = p.str(v, join(field, key)); ok && !ValidMetricName(d.Metric) {
				p.errorf(v, join(field, key), "invalid metric name %q: want [a-zA-Z_:][a-zA-Z0-9_:]*", d.Metric)
				ok = false
			}
			pos.metric = v
		case "type":
			var s string
			if s, ok = p.str(v, join(field, key)); ok {
				d.Type = tma.DataType(s)
				if d.Type != tma.Measurement && d.Type != tma.Event {
					p.errorf(v, join(field, key), "want %s or %s, got %q", tma.Measurement, tma.Event, s)
					ok = false
				}
			}
		default:
			return false
		}
		have[key] = true
		good = good && ok
		switch key {
		case "id":
			pos.id = v
		case "name":
			pos.name = v
		}
		return true
	})
	if n.Kind != yaml.MappingNode {
		return
	}
	if !p.required(n, field, have, "id", "name", "type") || !good {
		return
	}
	switch {
	case d.Type == tma.Event && d.Kind != "":
		p.errorf(pos.kind, join(field, "kind"), "only measurements have a kind")
		return
	case d.Type == tma.Measurement && d.Kind == "":
		d.Kind = KindGauge
	}
	if d.Metric == "" {
		d.Metric = MetricName(d)
		pos.metric = pos.name
	}
	f.Descriptions = append(f.Descriptions, d)
	pos.field = field
	p.descriptionPos = append(p.descriptionPos, pos)
}

// unique rejects entries whose id or name repeats an earlier one of the
// same kind.
func (p *parser) unique(f *File) {
	type idName struct {
		id   int64
		name string
	}
	check := func(entries []idName, pos []position) {
		ids := map[int64]position{}
		names := map[string]position{}
		for i, e := range entries {
			if first, dup := ids[e.id]; dup {
				p.errorf(pos[i].id, join(pos[i].field, "id"), "duplicate id %d (first at %s, line %d)", e.id, first.field, first.id.Line)
			} else {
				ids[e.id] = pos[i]
			}
			if first, dup := names[e.name]; dup {
				p.errorf(pos[i].name, join(pos[i].field, "name"), "duplicate name %q (first at %s, line %d)", e.name, first.field, first.name.Line)
			} else {
				names[e.name] = pos[i]
			}
		}
	}
	var probes, resources, descriptions []idName
	for _, x := range f.Probes {
		probes = append(probes, idName{x.ID, x.Name})
	}
	for _, x := range f.Resources {
		resources = append(resources, idName{x.ID, x.Name})
	}
	for _, x := range f.Descriptions {
		descriptions = append(descriptions, idName{x.ID, x.Name})
	}
	check(probes, p.probePos)
	check(resources, p.resourcePos)
	check(descriptions, p.descriptionPos)

	// Two descriptions on one series name would interleave their samples
	// in one series, and the generic names belong to unknown ids.
	metrics := map[string]position{}
	names := map[string]bool{}
	for i, d := range f.Descriptions {
		pos := p.descriptionPos[i]
		if names[d.Name] {
			continue // reported as a duplicate name already
		}
		names[d.Name] = true
		if d.Metric == GenericMeasurement || d.Metric == GenericEvent {
			p.errorf(pos.metric, join(pos.field, "metric"), "metric name %q is reserved for unknown descriptions", d.Metric)
			continue
		}
		if first, dup := metrics[d.Metric]; dup {
			p.errorf(pos.metric, join(pos.field, "metric"), "metric name %q also made by %s (line %d)", d.Metric, first.field, first.metric.Line)
			continue
		}
		metrics[d.Metric] = pos
	}
}
