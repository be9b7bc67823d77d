package registry

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tmaflow/tmaflow/pkg/contract"
	"github.com/tmaflow/tmaflow/pkg/tma"
)

func (p *parser) probe(f *File, field string, n *yaml.Node) {
	var pr Probe
	pos, ok := p.entry(n, field, func(key string, v *yaml.Node) (known, ok bool) {
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
			return false, false
		}
		return true, ok
	}, "id", "name", "secret_hash")
	if !ok {
		return
	}
	if pr.Tenant == "" {
		pr.Tenant = contract.DefaultTenant
	}
	f.Probes = append(f.Probes, pr)
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
	pos, ok := p.entry(n, field, func(key string, v *yaml.Node) (known, ok bool) {
		switch key {
		case "id":
			r.ID, ok = p.id(v, join(field, key))
		case "name":
			r.Name, ok = p.nonEmpty(v, join(field, key))
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
			return false, false
		}
		return true, ok
	}, "id", "name")
	if !ok {
		return
	}
	f.Resources = append(f.Resources, r)
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
	return !strings.HasPrefix(s, "__") && validRuleLabel(s)
}

func (p *parser) description(f *File, field string, n *yaml.Node) {
	var d Description
	pos, ok := p.entry(n, field, func(key string, v *yaml.Node) (known, ok bool) {
		switch key {
		case "id":
			d.ID, ok = p.id(v, join(field, key))
		case "name":
			d.Name, ok = p.nonEmpty(v, join(field, key))
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
			d.Kind, ok = oneOf(p, v, join(field, key), KindGauge, KindCounter)
		case "help":
			d.Help, ok = p.str(v, join(field, key))
		case "metric":
			if d.Metric, ok = p.str(v, join(field, key)); ok && !ValidMetricName(d.Metric) {
				p.errorf(v, join(field, key), "invalid metric name %q: want [a-zA-Z_:][a-zA-Z0-9_:]*", d.Metric)
				ok = false
			}
		case "type":
			d.Type, ok = oneOf(p, v, join(field, key), tma.Measurement, tma.Event)
		default:
			return false, false
		}
		return true, ok
	}, "id", "name", "type")
	if !ok {
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
	p.descriptionPos = append(p.descriptionPos, pos)
}
