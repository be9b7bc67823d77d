package monitor

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/tmaflow/tmaflow/pkg/samples"
)

// pushPathPrefix is the Pushgateway-style push path:
// /metrics/job/<job>{/<label>/<value>}.
const pushPathPrefix = "/metrics/"

// pushLabels reads the grouping labels of a Pushgateway path (escaped, as
// r.URL.EscapedPath gives it): job first, then label/value pairs; a name
// suffixed @base64 has a base64url value (for values holding "/", and "="
// for the empty value), as the Pushgateway takes them. The result is
// sorted.
func pushLabels(escapedPath string) ([]samples.Label, error) {
	rest, ok := strings.CutPrefix(escapedPath, pushPathPrefix)
	if !ok {
		return nil, errors.New("push path: want /metrics/job/<job>{/<label>/<value>}")
	}
	segs := strings.Split(rest, "/")
	if len(segs)%2 != 0 || len(segs) < 2 {
		return nil, fmt.Errorf("push path %q: want /metrics/job/<job>{/<label>/<value>}", escapedPath)
	}
	ls := make([]samples.Label, 0, len(segs)/2)
	for i := 0; i < len(segs); i += 2 {
		name, err := url.PathUnescape(segs[i])
		if err != nil {
			return nil, fmt.Errorf("push path: label name %q: %w", segs[i], err)
		}
		value, err := url.PathUnescape(segs[i+1])
		if err != nil {
			return nil, fmt.Errorf("push path: label %s: value %q: %w", name, segs[i+1], err)
		}
		if base, ok := strings.CutSuffix(name, "@base64"); ok {
			b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(value, "="))
			if err != nil {
				return nil, fmt.Errorf("push path: label %s: value %q is not base64url: %w", base, value, err)
			}
			name, value = base, string(b)
		}
		switch {
		case i == 0 && name != "job":
			return nil, fmt.Errorf("push path %q: the first label must be job", escapedPath)
		case i == 0 && value == "":
			return nil, errors.New("push path: job must not be empty")
		case !model.LegacyValidation.IsValidLabelName(name) || strings.HasPrefix(name, "__"):
			return nil, fmt.Errorf("push path: invalid label name %q", name)
		}
		ls = append(ls, samples.Label{Name: name, Value: value})
	}
	return sortedUnique(ls)
}

// importLabels reads the extra_label=<name>=<value> query parameters of
// /api/v1/import/prometheus (as VictoriaMetrics takes them), sorted.
func importLabels(q url.Values) ([]samples.Label, error) {
	var ls []samples.Label
	for _, kv := range q["extra_label"] {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !model.UTF8Validation.IsValidLabelName(name) || strings.HasPrefix(name, "__") {
			return nil, fmt.Errorf("extra_label %q: want <label name>=<value>", kv)
		}
		ls = append(ls, samples.Label{Name: name, Value: value})
	}
	return sortedUnique(ls)
}

func sortedUnique(ls []samples.Label) ([]samples.Label, error) {
	slices.SortStableFunc(ls, func(a, b samples.Label) int { return strings.Compare(a.Name, b.Name) })
	for i := 1; i < len(ls); i++ {
		if ls[i].Name == ls[i-1].Name {
			return nil, fmt.Errorf("label %s given twice", ls[i].Name)
		}
	}
	return ls, nil
}
