package registry

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

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

// entry walks the mapping of one probe, resource or description. decode
// reads one key's value into the entry: known is false for a key the
// entry does not have, ok false for a bad value (decode reports it).
// entry reports where the entry came from, and whether it is a mapping
// with every required key and no bad value.
func (p *parser) entry(n *yaml.Node, field string, decode func(key string, v *yaml.Node) (known, ok bool), required ...string) (position, bool) {
	var pos position
	have := map[string]bool{}
	good := true
	p.mapping(n, field, func(key string, k, v *yaml.Node) bool {
		known, ok := decode(key, v)
		if !known {
			return false
		}
		have[key] = true
		good = good && ok
		switch key {
		case "id":
			pos.id = v
		case "name":
			pos.name = v
		case "kind":
			pos.kind = v
		case "metric":
			pos.metric = v
		}
		return true
	})
	if n.Kind != yaml.MappingNode {
		return pos, false
	}
	if !p.required(n, field, have, required...) || !good {
		return pos, false
	}
	pos.field = field
	return pos, true
}

// nonEmpty reads a string that must not be empty.
func (p *parser) nonEmpty(n *yaml.Node, field string) (string, bool) {
	s, ok := p.str(n, field)
	if ok && s == "" {
		p.errorf(n, field, "must not be empty")
		ok = false
	}
	return s, ok
}

// oneOf reads a string that must be a or b.
func oneOf[T ~string](p *parser, n *yaml.Node, field string, a, b T) (T, bool) {
	s, ok := p.str(n, field)
	if !ok {
		return "", false
	}
	t := T(s)
	if t != a && t != b {
		p.errorf(n, field, "want %s or %s, got %q", a, b, s)
		return t, false
	}
	return t, true
}
