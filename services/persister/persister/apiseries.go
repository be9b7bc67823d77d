package persister

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

func (s *Service) labelNames(r *http.Request, tenant string) apiResult {
	return s.labelSet(r, tenant, queryAPIError, func(q storage.Querier, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelNames(r.Context(), hints, ms...)
	})
}

func (s *Service) labelValues(r *http.Request, tenant string) apiResult {
	name := r.PathValue("name")
	if strings.HasPrefix(name, "U__") {
		name = model.UnescapeName(name, model.ValueEncodingEscaping)
	}
	if !model.UTF8Validation.IsValidLabelName(name) {
		return apiResult{err: badData(fmt.Errorf("invalid label name: %q", name))}
	}
	openErr := func(err error) *apiError { return &apiError{errorExec, err} }
	return s.labelSet(r, tenant, openErr, func(q storage.Querier, hints *storage.LabelHints, ms []*labels.Matcher) ([]string, annotations.Annotations, error) {
		return q.LabelValues(r.Context(), name, hints, ms...)
	})
}

// labelSet answers /labels and /label/<name>/values: the union of what
// list returns for each match[] set (or none), sorted and cut to the
// limit. openErr types a failure to open the querier.
func (s *Service) labelSet(r *http.Request, tenant string, openErr func(error) *apiError,
	list func(storage.Querier, *storage.LabelHints, []*labels.Matcher) ([]string, annotations.Annotations, error),
) apiResult {
	sp, q, bad := s.selectQuerier(r, tenant, matchersBadData, openErr)
	if bad != nil {
		return *bad
	}
	defer func() { s.closeQuerier(q) }()
	limit, sets := sp.limit, sp.sets
	hints := &storage.LabelHints{Limit: hintLimit(limit)}
	if len(sets) == 0 {
		sets = [][]*labels.Matcher{nil}
	}
	var warnings annotations.Annotations
	set := map[string]struct{}{}
	for _, ms := range sets {
		vals, w, err := list(q, hints, ms)
		warnings.Merge(w)
		if err != nil {
			return apiResult{err: &apiError{errorExec, err}, warnings: warnings}
		}
		for _, v := range vals {
			set[v] = struct{}{}
		}
	}
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	slices.Sort(out)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
		warnings = warnings.Add(errors.New("results truncated due to limit"))
	}
	return apiResult{data: out, warnings: warnings}
}

func (s *Service) series(r *http.Request, tenant string) apiResult {
	if err := r.ParseForm(); err != nil {
		return apiResult{err: badData(fmt.Errorf("error parsing form values: %w", err))}
	}
	if len(r.Form["match[]"]) == 0 {
		return apiResult{err: badData(errors.New("no match[] parameter provided"))}
	}
	sp, q, bad := s.selectQuerier(r, tenant, matchersInvalidParam, queryAPIError)
	if bad != nil {
		return *bad
	}
	defer func() { s.closeQuerier(q) }()
	limit, start, end, sets := sp.limit, sp.start, sp.end, sp.sets
	hints := &storage.SelectHints{
		Start: timestamp.FromTime(start),
		End:   timestamp.FromTime(end),
		Func:  "series", // no samples needed
		Limit: hintLimit(limit),
	}
	var ss storage.SeriesSet
	if len(sets) > 1 {
		all := make([]storage.SeriesSet, 0, len(sets))
		for _, ms := range sets {
			all = append(all, q.Select(r.Context(), true, hints, ms...))
		}
		ss = storage.NewMergeSeriesSet(all, 0, storage.ChainedSeriesMerge)
	} else {
		ss = q.Select(r.Context(), false, hints, sets[0]...)
	}
	out := seriesData{}
	warnings := ss.Warnings()
	for ss.Next() {
		out = append(out, ss.At().Labels())
		if limit > 0 && len(out) > limit {
			out = out[:limit]
			warnings = warnings.Add(errors.New("results truncated due to limit"))
			break
		}
	}
	if err := ss.Err(); err != nil {
		return apiResult{err: queryAPIError(err), warnings: warnings}
	}
	return apiResult{data: out, warnings: warnings}
}

func (s *Service) metricMetadata(r *http.Request, tenant string) apiResult {
	limit := -1
	if v := r.FormValue("limit"); v != "" {
		var err error
		if limit, err = strconv.Atoi(v); err != nil {
			return apiResult{err: badData(errors.New("limit must be a number"))}
		}
	}
	if v := r.FormValue("limit_per_metric"); v != "" {
		// One entry per metric is all there is, so any limit holds.
		if _, err := strconv.Atoi(v); err != nil {
			return apiResult{err: badData(errors.New("limit_per_metric must be a number"))}
		}
	}
	return apiResult{data: s.meta.query(tenant, r.FormValue("metric"), limit)}
}
