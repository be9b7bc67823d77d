package persister

import (
	"net/http"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"
)

// selectParams are the parameters /series, /labels and
// /label/<name>/values share.
type selectParams struct {
	limit      int
	start, end time.Time
	sets       [][]*labels.Matcher
}

// Prometheus reports a bad match[] as bad_data on /labels and label values,
// and as an invalid parameter on /series.
func matchersBadData(err error) apiResult      { return apiResult{err: badData(err)} }
func matchersInvalidParam(err error) apiResult { return invalidParam(err, "match[]") }

func (s *Service) parseSelectParams(r *http.Request, matchersErr func(error) apiResult) (selectParams, *apiResult) {
	var sp selectParams
	var err error
	fail := func(res apiResult) (selectParams, *apiResult) { return sp, &res }
	if sp.limit, err = parseLimit(r.FormValue("limit")); err != nil {
		return fail(invalidParam(err, "limit"))
	}
	if sp.start, err = parseTimeParam(r, "start", minTime); err != nil {
		return fail(invalidParam(err, "start"))
	}
	if sp.end, err = parseTimeParam(r, "end", maxTime); err != nil {
		return fail(invalidParam(err, "end"))
	}
	if sp.sets, err = parseMatchers(s.parser, r.Form["match[]"]); err != nil {
		return fail(matchersErr(err))
	}
	return sp, nil
}

// selectQuerier parses the parameters /series, /labels and
// /label/<name>/values share and opens a querier over their time range,
// which the caller closes. matchersErr answers a bad match[], openErr
// types a failure to open the querier.
func (s *Service) selectQuerier(r *http.Request, tenant string, matchersErr func(error) apiResult, openErr func(error) *apiError) (selectParams, storage.Querier, *apiResult) {
	sp, bad := s.parseSelectParams(r, matchersErr)
	if bad != nil {
		return sp, nil, bad
	}
	q, err := s.queryable(tenant).Querier(timestamp.FromTime(sp.start), timestamp.FromTime(sp.end))
	if err != nil {
		return sp, nil, &apiResult{err: openErr(err)}
	}
	return sp, q, nil
}

func (s *Service) closeQuerier(q storage.Querier) {
	if err := q.Close(); err != nil {
		s.logger.Warn("close tsdb querier", "err", err)
	}
}

// hintLimit asks storage for one more than the limit, so truncation shows.
func hintLimit(limit int) int {
	if limit > 0 {
		return limit + 1
	}
	return 0
}
