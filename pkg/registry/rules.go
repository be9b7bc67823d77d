package registry

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// LabelRule is one Prometheus relabel_config, applied by the labeler to
// every series it publishes. Its fields have Prometheus's defaults filled
// in. The labeler hands it to github.com/prometheus/prometheus/model/relabel
// (this package does not import Prometheus); Parse already checks what the
// relabel package would reject, so a file that parses compiles.
//
// Besides the series' labels, rules can read these, which are removed after
// relabelling like every other __ label except __name__:
//
//	__mqtt_topic__        the mqtt-topic header of the record (MQTT ingest)
//	__source__            the source header (http, mqtt)
//	__tenant__            the record's tenant (read-only: tenant is reset after)
//	__resource_type__     the registry resource's type (TMA input)
//	__resource_address__  the registry resource's address (TMA input)
type LabelRule struct {
	SourceLabels []string `json:"source_labels,omitempty"`
	Separator    string   `json:"separator"`
	Regex        string   `json:"regex"`
	Modulus      uint64   `json:"modulus,omitempty"`
	TargetLabel  string   `json:"target_label,omitempty"`
	Replacement  string   `json:"replacement"`
	Action       string   `json:"action"`

	// Where the rule is, for errors found by whoever compiles it.
	File   string `json:"-"`
	Line   int    `json:"line"`
	Column int    `json:"-"`
	Field  string `json:"-"` // label_rules[i]
}

// Errorf returns an error located at the rule, in the style of Parse.
func (r LabelRule) Errorf(format string, args ...any) *Error {
	return &Error{File: r.File, Line: r.Line, Column: r.Column, Field: r.Field, Msg: fmt.Sprintf(format, args...)}
}

// Relabel actions (Prometheus names).
const (
	ActionReplace   = "replace"
	ActionKeep      = "keep"
	ActionDrop      = "drop"
	ActionKeepEqual = "keepequal"
	ActionDropEqual = "dropequal"
	ActionHashMod   = "hashmod"
	ActionLabelMap  = "labelmap"
	ActionLabelDrop = "labeldrop"
	ActionLabelKeep = "labelkeep"
	ActionLowercase = "lowercase"
	ActionUppercase = "uppercase"
)

// Prometheus's relabel defaults.
const (
	defaultSeparator   = ";"
	defaultRegex       = "(.*)"
	defaultReplacement = "$1"
)

func (p *parser) labelRule(f *File, field string, n *yaml.Node) {
	r := LabelRule{
		Separator: defaultSeparator, Regex: defaultRegex, Replacement: defaultReplacement, Action: ActionReplace,
		File: p.file, Line: n.Line, Column: n.Column, Field: field,
	}
	nodes := map[string]*yaml.Node{}
	good := true
	p.mapping(n, field, func(key string, k, v *yaml.Node) bool {
		var ok bool
		fk := join(field, key)
		switch key {
		case "source_labels":
			r.SourceLabels, ok = p.labelNames(v, fk)
		case "separator":
			r.Separator, ok = p.str(v, fk)
		case "regex":
			if r.Regex, ok = p.str(v, fk); ok {
				if _, err := regexp.Compile("^(?s:" + r.Regex + ")$"); err != nil {
					p.errorf(v, fk, "%v", err)
					ok = false
				}
			}
		case "modulus":
			var s string
			if s, ok = p.str(v, fk); ok {
				var err error
				if r.Modulus, err = strconv.ParseUint(s, 10, 64); err != nil {
					p.errorf(v, fk, "want an integer >= 0, got %q", s)
					ok = false
				}
			}
		case "target_label":
			r.TargetLabel, ok = p.str(v, fk)
		case "replacement":
			r.Replacement, ok = p.str(v, fk)
		case "action":
			var s string
			if s, ok = p.str(v, fk); ok {
				r.Action = strings.ToLower(s)
				if !validAction(r.Action) {
					p.errorf(v, fk, "unknown relabel action %q", s)
					ok = false
				}
			}
		default:
			good = false
			return false
		}
		nodes[key] = v
		good = good && ok
		return true
	})
	if n.Kind != yaml.MappingNode || !good {
		return
	}
	if p.ruleSemantics(r, n, nodes) {
		f.LabelRules = append(f.LabelRules, r)
	}
}

// ruleSemantics mirrors relabel.Config.Validate, so errors carry a line,
// and forbids rewriting the tenant.
func (p *parser) ruleSemantics(r LabelRule, n *yaml.Node, nodes map[string]*yaml.Node) bool {
	at := func(key string) *yaml.Node {
		if v, ok := nodes[key]; ok {
			return v
		}
		return n
	}
	field := r.Field
	fail := func(key, format string, args ...any) bool {
		p.errorf(at(key), join(field, key), format, args...)
		return false
	}
	switch r.Action {
	case ActionReplace, ActionHashMod, ActionLowercase, ActionUppercase, ActionKeepEqual, ActionDropEqual:
		if r.TargetLabel == "" {
			return fail("target_label", "required for action %s", r.Action)
		}
		templated := r.Action == ActionReplace && strings.Contains(r.TargetLabel, "$")
		if !templated && !validRuleLabel(r.TargetLabel) {
			return fail("target_label", "invalid label name %q", r.TargetLabel)
		}
		if templated && !validLabelTemplate(r.TargetLabel) {
			return fail("target_label", "invalid label name template %q", r.TargetLabel)
		}
		if r.TargetLabel == LabelTenant {
			return fail("target_label", "the tenant label comes from the record's tenant; rules cannot set it")
		}
	}
	switch r.Action {
	case ActionHashMod:
		if r.Modulus == 0 {
			return fail("modulus", "required (> 0) for action hashmod")
		}
	case ActionLowercase, ActionUppercase, ActionKeepEqual, ActionDropEqual:
		if r.Replacement != defaultReplacement {
			return fail("replacement", "not allowed for action %s", r.Action)
		}
		if r.Action == ActionKeepEqual || r.Action == ActionDropEqual {
			for _, k := range []string{"regex", "modulus", "separator"} {
				if _, set := nodes[k]; set {
					return fail(k, "action %s takes only source_labels and target_label", r.Action)
				}
			}
		}
	case ActionLabelMap:
		if !validLabelTemplate(r.Replacement) {
			return fail("replacement", "invalid label name template %q for action labelmap", r.Replacement)
		}
	case ActionLabelDrop, ActionLabelKeep:
		for _, k := range []string{"source_labels", "target_label", "modulus", "separator", "replacement"} {
			if _, set := nodes[k]; set {
				return fail(k, "action %s takes only regex", r.Action)
			}
		}
	}
	return true
}

// validLabelTemplate is Prometheus's check of a label name with $1 or
// ${name} references, ^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$.
func validLabelTemplate(s string) bool {
	word := func(c byte) bool {
		return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '$' && i+1 < len(s) && s[i+1] == '{':
			j := i + 2
			for j < len(s) && word(s[j]) {
				j++
			}
			if j == i+2 || j >= len(s) || s[j] != '}' {
				return false
			}
			i = j + 1
		case c == '$':
			j := i + 1
			for j < len(s) && word(s[j]) {
				j++
			}
			if j == i+1 {
				return false
			}
			i = j
		case word(c) && (i > 0 || c < '0' || c > '9'):
			i++
		default:
			return false
		}
	}
	return true
}

func validAction(a string) bool {
	return slices.Contains([]string{ActionReplace, ActionKeep, ActionDrop, ActionKeepEqual, ActionDropEqual,
		ActionHashMod, ActionLabelMap, ActionLabelDrop, ActionLabelKeep, ActionLowercase, ActionUppercase}, a)
}

// validRuleLabel is the classic label name charset; unlike resources'
// extra labels, rules may use __ names (__name__, __mqtt_topic__ …).
func validRuleLabel(s string) bool {
	if s == "" {
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

func (p *parser) labelNames(n *yaml.Node, field string) ([]string, bool) {
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, field, "want a list of label names, got %s", kindName(n))
		return nil, false
	}
	names := make([]string, 0, len(n.Content))
	ok := true
	for i, item := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		s, good := p.str(deref(item), f)
		if good && !validRuleLabel(s) {
			p.errorf(item, f, "invalid label name %q", s)
			good = false
		}
		ok = ok && good
		names = append(names, s)
	}
	return names, ok
}
