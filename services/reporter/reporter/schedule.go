package reporter

import (
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/robfig/cron/v3"
)

// Schedule is when a report runs: a cron expression (five fields, or
// @daily, @weekly, @monthly, @hourly) read in the report's time zone.
type Schedule struct {
	spec  string
	loc   *time.Location
	sched cron.Schedule
}

// cronParser is robfig/cron's standard five-field parser with descriptors.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses spec in the time zone loc.
func ParseSchedule(spec string, loc *time.Location) (Schedule, error) {
	if strings.Contains(spec, "TZ=") {
		return Schedule{}, fmt.Errorf("schedule %q: give the time zone in timezone, not in the expression", spec)
	}
	s, err := cronParser.Parse("CRON_TZ=" + loc.String() + " " + spec)
	if err != nil {
		return Schedule{}, fmt.Errorf("schedule %q: %w", spec, err)
	}
	return Schedule{spec: spec, loc: loc, sched: s}, nil
}

// Next is the first run strictly after t.
func (s Schedule) Next(t time.Time) time.Time { return s.sched.Next(t) }

func (s Schedule) String() string { return s.spec }

// Period is the span a run covers, ending at or before its run time.
type Period struct {
	// Kind is day, week or month: the previous calendar day, week (Monday
	// to Monday) or month in the report's time zone. Empty: Range.
	Kind string
	// Range is the span before the run time when Kind is empty.
	Range time.Duration
}

// ParsePeriod parses "day", "week", "month" or a duration ("6h", "7d").
func ParsePeriod(s string) (Period, error) {
	switch s {
	case "day", "week", "month":
		return Period{Kind: s}, nil
	}
	d, err := model.ParseDuration(s)
	if err != nil || d <= 0 {
		return Period{}, fmt.Errorf("period %q: want day, week, month or a positive duration such as 6h or 7d", s)
	}
	return Period{Range: time.Duration(d)}, nil
}

func (p Period) String() string {
	if p.Kind != "" {
		return p.Kind
	}
	return model.Duration(p.Range).String()
}

// Of is the span [start, end) covered by the run at t, calendar periods
// read in loc: the previous day of a run at 00:30 on 30 March 2026 in
// Europe/Berlin is 29 March 00:00+01:00 to 30 March 00:00+02:00, 23
// hours across the DST change; a run on 31 March covers 30 to 31 March.
func (p Period) Of(t time.Time, loc *time.Location) (start, end time.Time) {
	l := t.In(loc)
	y, m, d := l.Date()
	switch p.Kind {
	case "day":
		return time.Date(y, m, d-1, 0, 0, 0, 0, loc), time.Date(y, m, d, 0, 0, 0, 0, loc)
	case "week":
		back := (int(l.Weekday()) + 6) % 7 // days since Monday
		return time.Date(y, m, d-back-7, 0, 0, 0, 0, loc), time.Date(y, m, d-back, 0, 0, 0, 0, loc)
	case "month":
		return time.Date(y, m-1, 1, 0, 0, 0, 0, loc), time.Date(y, m, 1, 0, 0, 0, 0, loc)
	}
	return t.Add(-p.Range), t
}
