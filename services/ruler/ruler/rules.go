package ruler

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"

	"github.com/tmaflow/tmaflow/pkg/contract"
)

// ruleFile is one parsed rule file of a tenant.
type ruleFile struct {
	tenant string
	path   string
	groups []rulefmt.RuleGroup
}

// fileStamp is what the change check compares.
type fileStamp struct {
	size    int64
	modTime time.Time
}

// ruleFileExts are the extensions of rule files; other files are ignored.
var ruleFileExts = []string{".yml", ".yaml"}

// listRuleFiles returns the rule files under dir by tenant directory,
// sorted, with their stamps. Files directly in dir have no tenant and are
// an error, as are directories not named like a tenant.
func listRuleFiles(dir string, keep func(tenant string) bool) (map[string]string, map[string]fileStamp, error) {
	tenants := map[string]string{} // path → tenant
	stamps := map[string]fileStamp{}
	if dir == "" {
		return tenants, stamps, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read rules directory %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(dir, name)
		isDir := e.IsDir()
		if e.Type()&fs.ModeSymlink != 0 {
			// Kubernetes mounts ConfigMap items through symlinks.
			fi, err := os.Stat(path)
			isDir = err == nil && fi.IsDir()
		}
		if !isDir {
			if slices.Contains(ruleFileExts, filepath.Ext(name)) {
				errs = append(errs, fmt.Errorf("rule file %s: outside a tenant directory: put it in %s/<tenant>/", path, dir))
			}
			continue
		}
		if !contract.ValidTenant(name) {
			errs = append(errs, fmt.Errorf("rules directory %s: %q is not a valid tenant", path, name))
			continue
		}
		if !keep(name) {
			continue
		}
		files, err := os.ReadDir(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("read rules directory %s: %w", path, err))
			continue
		}
		for _, f := range files {
			if f.IsDir() || strings.HasPrefix(f.Name(), ".") || !slices.Contains(ruleFileExts, filepath.Ext(f.Name())) {
				continue
			}
			fp := filepath.Join(path, f.Name())
			fi, err := os.Stat(fp)
			if err != nil {
				errs = append(errs, fmt.Errorf("stat rule file %s: %w", fp, err))
				continue
			}
			tenants[fp] = name
			stamps[fp] = fileStamp{size: fi.Size(), modTime: fi.ModTime()}
		}
	}
	return tenants, stamps, errors.Join(errs...)
}

// parseRuleFiles parses every file; the errors name file, line and column.
func parseRuleFiles(files map[string]string, p parser.Parser, logger *slog.Logger) ([]ruleFile, error) {
	paths := make([]string, 0, len(files))
	for path := range files {
		paths = append(paths, path)
	}
	slices.Sort(paths)
	var (
		out  []ruleFile
		errs []error
	)
	for _, path := range paths {
		rgs, perrs := rulefmt.ParseFile(path, false, model.UTF8Validation, p, logger)
		if len(perrs) > 0 {
			errs = append(errs, perrs...)
			continue
		}
		out = append(out, ruleFile{tenant: files[path], path: path, groups: rgs.Groups})
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("parse rules: %w", errors.Join(errs...))
	}
	return out, nil
}

// buildRules makes the rules of one rulefmt group. Alerts get the tenant
// label, so they are told apart in Alertmanager and topic-alerts; the
// templates see it as $externalLabels.tenant. Alerting rules start
// "restored" in Prometheus' sense off: no ALERTS/ALERTS_FOR_STATE series
// are written (state is restored from the replayed window instead).
func buildRules(tenant string, rg rulefmt.RuleGroup, p parser.Parser, externalURL string, logger *slog.Logger) ([]rules.Rule, error) {
	ext := labels.FromStrings(TenantLabel, tenant)
	out := make([]rules.Rule, 0, len(rg.Rules))
	for _, r := range rg.Rules {
		parsed, err := p.ParseExpr(r.Expr)
		if err != nil {
			return nil, fmt.Errorf("group %q: rule %q: %w", rg.Name, r.Alert+r.Record, err)
		}
		expr := printedExpr{Expr: parsed, text: parsed.String()}
		if r.Alert != "" {
			lbls := labels.NewBuilder(rules.FromMaps(rg.Labels, r.Labels)).Set(TenantLabel, tenant).Labels()
			out = append(out, rules.NewAlertingRule(r.Alert, expr, time.Duration(r.For), time.Duration(r.KeepFiringFor),
				lbls, labels.FromMap(r.Annotations), ext, externalURL, false, logger.With("alert", r.Alert)))
			continue
		}
		out = append(out, rules.NewRecordingRule(r.Record, expr, rules.FromMaps(rg.Labels, r.Labels)))
	}
	return out, nil
}

// printedExpr is a rule's expression printed once. The rules package
// prints a rule's expression at every evaluation, to query it and to name
// the query's origin, which took a fifth of the evaluation's CPU. Only
// its text is read: walking the tree needs the parsed node (queryOf).
type printedExpr struct {
	parser.Expr
	text string
}

func (e printedExpr) String() string { return e.text }

// queryOf is the parsed expression of r, to walk.
func queryOf(r rules.Rule) parser.Expr {
	if e, ok := r.Query().(printedExpr); ok {
		return e.Expr
	}
	return r.Query()
}

// selectorsOf returns the matchers of every vector selector of the rules
// (range selectors included), deduplicated by their text.
func selectorsOf(rs []rules.Rule) [][]*labels.Matcher {
	seen := map[string]bool{}
	var out [][]*labels.Matcher
	for _, r := range rs {
		parser.Inspect(queryOf(r), func(node parser.Node, _ []parser.Node) error {
			vs, ok := node.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			key := vs.String()
			if !seen[key] {
				seen[key] = true
				out = append(out, vs.LabelMatchers)
			}
			return nil
		})
	}
	return out
}

// selector is one selector of a group, for the trigger index.
type selector struct {
	g        *groupRunner
	matchers []*labels.Matcher
}

// tenantIndex finds the groups of one tenant whose selectors match a
// series: by metric name where the selector fixes it, then by the value of
// another label the selector fixes (rules written per device select
// `metric{resource_id="…"}`: a batch is tried against its own device's
// selectors, not every device's), else by trying each catch-all selector.
type tenantIndex struct {
	byName map[string]*nameIndex
	any    []selector
}

// nameIndex holds the selectors of one metric name.
type nameIndex struct {
	// byLabel: label name → value → the selectors that fix the label to
	// the value.
	byLabel map[string]map[string][]selector
	rest    []selector
}

func newTenantIndex() *tenantIndex {
	return &tenantIndex{byName: map[string]*nameIndex{}}
}

func (ix *tenantIndex) add(g *groupRunner, ms []*labels.Matcher) {
	sel := selector{g, ms}
	var name *labels.Matcher
	for _, m := range ms {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			name = m
			break
		}
	}
	if name == nil {
		ix.any = append(ix.any, sel)
		return
	}
	ni := ix.byName[name.Value]
	if ni == nil {
		ni = &nameIndex{byLabel: map[string]map[string][]selector{}}
		ix.byName[name.Value] = ni
	}
	for _, m := range ms {
		if m.Name == labels.MetricName || m.Type != labels.MatchEqual {
			continue
		}
		values := ni.byLabel[m.Name]
		if values == nil {
			values = map[string][]selector{}
			ni.byLabel[m.Name] = values
		}
		values[m.Value] = append(values[m.Value], sel)
		return
	}
	ni.rest = append(ni.rest, sel)
}

// match calls f for every selector matching the series lbls (name is its
// __name__); a group may be reported more than once.
func (ix *tenantIndex) match(name string, lbls labels.Labels, f func(*groupRunner)) {
	try := func(sels []selector) {
		for _, s := range sels {
			if matchesAll(s.matchers, lbls) {
				f(s.g)
			}
		}
	}
	if ni := ix.byName[name]; ni != nil {
		for label, values := range ni.byLabel {
			try(values[lbls.Get(label)])
		}
		try(ni.rest)
	}
	try(ix.any)
}

// matchesAll reports whether lbls satisfy every matcher.
func matchesAll(ms []*labels.Matcher, lbls labels.Labels) bool {
	for _, m := range ms {
		if !m.Matches(lbls.Get(m.Name)) {
			return false
		}
	}
	return true
}

// ruleSet is the rules in force: the groups and the trigger index. It is
// replaced whole on reload.
type ruleSet struct {
	groups  []*groupRunner
	byKey   map[string]*groupRunner
	tenants map[string]*tenantIndex
	stamps  map[string]fileStamp
}

func newRuleSet(groups []*groupRunner, stamps map[string]fileStamp) *ruleSet {
	rs := &ruleSet{groups: groups, byKey: map[string]*groupRunner{}, tenants: map[string]*tenantIndex{}, stamps: stamps}
	for _, g := range groups {
		rs.byKey[g.key] = g
		ix := rs.tenants[g.tenant]
		if ix == nil {
			ix = newTenantIndex()
			rs.tenants[g.tenant] = ix
		}
		for _, ms := range selectorsOf(g.group.Rules()) {
			ix.add(g, ms)
		}
	}
	return rs
}

// groupKey identifies a group across reloads.
func groupKey(tenant, file, name string) string {
	return tenant + "\x00" + rules.GroupKey(file, name)
}
