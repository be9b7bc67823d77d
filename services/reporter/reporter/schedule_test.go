package reporter

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

func TestPeriodOf(t *testing.T) {
	tests := []struct {
		name       string
		period     string
		tz         string
		at         string // RFC 3339
		start, end string // RFC 3339, in tz
		hours      float64
	}{
		{name: "day utc", period: "day", tz: "UTC", at: "2026-11-02T00:05:00Z", start: "2026-11-01T00:00:00Z", end: "2026-11-02T00:00:00Z", hours: 24},
		{name: "day berlin spring forward", period: "day", tz: "Europe/Berlin", at: "2026-03-30T00:30:00+02:00", start: "2026-03-29T00:00:00+01:00", end: "2026-03-30T00:00:00+02:00", hours: 23},
		{name: "day berlin the day after spring forward", period: "day", tz: "Europe/Berlin", at: "2026-03-31T00:30:00+02:00", start: "2026-03-30T00:00:00+02:00", end: "2026-03-31T00:00:00+02:00", hours: 24},
		{name: "day berlin fall back", period: "day", tz: "Europe/Berlin", at: "2026-10-26T06:00:00+01:00", start: "2026-10-25T00:00:00+02:00", end: "2026-10-26T00:00:00+01:00", hours: 25},
		{name: "day new york from a utc instant", period: "day", tz: "America/New_York", at: "2026-11-02T03:00:00Z", start: "2026-10-31T00:00:00-04:00", end: "2026-11-01T00:00:00-04:00", hours: 24},
		{name: "day after leap day", period: "day", tz: "UTC", at: "2028-03-01T01:00:00Z", start: "2028-02-29T00:00:00Z", end: "2028-03-01T00:00:00Z", hours: 24},
		{name: "day at the year end", period: "day", tz: "Asia/Tokyo", at: "2027-01-01T00:00:00+09:00", start: "2026-12-31T00:00:00+09:00", end: "2027-01-01T00:00:00+09:00", hours: 24},
		{name: "week from a monday", period: "week", tz: "UTC", at: "2026-11-02T00:00:00Z", start: "2026-10-26T00:00:00Z", end: "2026-11-02T00:00:00Z", hours: 168},
		{name: "week from a sunday", period: "week", tz: "UTC", at: "2026-11-08T23:00:00Z", start: "2026-10-26T00:00:00Z", end: "2026-11-02T00:00:00Z", hours: 168},
		{name: "week across fall back", period: "week", tz: "Europe/Berlin", at: "2026-10-27T09:00:00+01:00", start: "2026-10-19T00:00:00+02:00", end: "2026-10-26T00:00:00+01:00", hours: 169},
		{name: "month berlin march (dst)", period: "month", tz: "Europe/Berlin", at: "2026-04-01T00:00:00+02:00", start: "2026-03-01T00:00:00+01:00", end: "2026-04-01T00:00:00+02:00", hours: 31*24 - 1},
		{name: "month berlin october (dst)", period: "month", tz: "Europe/Berlin", at: "2026-11-15T12:00:00+01:00", start: "2026-10-01T00:00:00+02:00", end: "2026-11-01T00:00:00+01:00", hours: 31*24 + 1},
		{name: "month leap february", period: "month", tz: "UTC", at: "2028-03-01T00:00:00Z", start: "2028-02-01T00:00:00Z", end: "2028-03-01T00:00:00Z", hours: 29 * 24},
		{name: "month february", period: "month", tz: "UTC", at: "2027-03-31T23:59:00Z", start: "2027-02-01T00:00:00Z", end: "2027-03-01T00:00:00Z", hours: 28 * 24},
		{name: "month january from the year's start", period: "month", tz: "Australia/Sydney", at: "2027-01-01T00:10:00+11:00", start: "2026-12-01T00:00:00+11:00", end: "2027-01-01T00:00:00+11:00", hours: 31 * 24},
		{name: "month utc instant is next month in berlin", period: "month", tz: "Europe/Berlin", at: "2026-11-30T23:30:00Z", start: "2026-11-01T00:00:00+01:00", end: "2026-12-01T00:00:00+01:00", hours: 30 * 24},
		{name: "range", period: "6h", tz: "Europe/Berlin", at: "2026-03-29T04:00:00+02:00", start: "2026-03-28T21:00:00+01:00", end: "2026-03-29T04:00:00+02:00", hours: 6},
		{name: "range in days", period: "7d", tz: "UTC", at: "2026-11-08T00:00:00Z", start: "2026-11-01T00:00:00Z", end: "2026-11-08T00:00:00Z", hours: 168},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePeriod(tc.period)
			require.NoError(t, err)
			at, err := time.Parse(time.RFC3339, tc.at)
			require.NoError(t, err)
			start, end := p.Of(at, mustLoc(t, tc.tz))
			wantStart, err := time.Parse(time.RFC3339, tc.start)
			require.NoError(t, err)
			wantEnd, err := time.Parse(time.RFC3339, tc.end)
			require.NoError(t, err)
			require.True(t, start.Equal(wantStart), "start %s, want %s", start, wantStart)
			require.True(t, end.Equal(wantEnd), "end %s, want %s", end, wantEnd)
			require.InDelta(t, tc.hours, end.Sub(start).Hours(), 1e-9)
		})
	}
}

func TestParsePeriodErrors(t *testing.T) {
	for _, s := range []string{"", "yesterday", "-1h", "0s", "1x"} {
		t.Run(s, func(t *testing.T) {
			_, err := ParsePeriod(s)
			require.ErrorContains(t, err, "want day, week, month or a positive duration")
		})
	}
}

func TestScheduleNext(t *testing.T) {
	tests := []struct {
		name  string
		spec  string
		tz    string
		after string
		want  []string // the next runs, RFC 3339
	}{
		{name: "daily utc", spec: "@daily", tz: "UTC", after: "2026-11-01T12:00:00Z", want: []string{"2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"}},
		{name: "daily berlin across fall back", spec: "@daily", tz: "Europe/Berlin", after: "2026-10-24T12:00:00Z",
			want: []string{"2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00"}},
		{name: "monthly berlin", spec: "@monthly", tz: "Europe/Berlin", after: "2026-10-15T00:00:00Z",
			want: []string{"2026-11-01T00:00:00+01:00", "2026-12-01T00:00:00+01:00", "2027-01-01T00:00:00+01:00"}},
		{name: "weekly is sunday midnight", spec: "@weekly", tz: "UTC", after: "2026-11-04T00:00:00Z", want: []string{"2026-11-08T00:00:00Z"}},
		{name: "cron monday 06:30 new york across dst end", spec: "30 6 * * 1", tz: "America/New_York", after: "2026-10-27T00:00:00Z",
			want: []string{"2026-11-02T06:30:00-05:00", "2026-11-09T06:30:00-05:00"}},
		{name: "cron on the 29th skips february", spec: "0 1 29 * *", tz: "UTC", after: "2027-01-30T00:00:00Z", want: []string{"2027-03-29T01:00:00Z"}},
		{name: "cron on the 29th in a leap year", spec: "0 1 29 2 *", tz: "UTC", after: "2027-03-01T00:00:00Z", want: []string{"2028-02-29T01:00:00Z"}},
		// robfig/cron skips a time that does not exist that day (README:
		// schedule outside 02:00-03:00 where DST starts at 02:00).
		{name: "time in the hour skipped at spring forward", spec: "30 2 * * *", tz: "Europe/Berlin", after: "2026-03-28T12:00:00Z",
			want: []string{"2026-03-30T02:30:00+02:00"}},
		// ... and runs a repeated time twice: both runs cover the same
		// period, so the second replaces the first (same id and key).
		{name: "time repeated at fall back runs twice", spec: "30 2 * * *", tz: "Europe/Berlin", after: "2026-10-24T12:00:00Z",
			want: []string{"2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00", "2026-10-26T02:30:00+01:00"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSchedule(tc.spec, mustLoc(t, tc.tz))
			require.NoError(t, err)
			at, err := time.Parse(time.RFC3339, tc.after)
			require.NoError(t, err)
			for _, w := range tc.want {
				want, err := time.Parse(time.RFC3339, w)
				require.NoError(t, err)
				at = s.Next(at)
				require.True(t, at.Equal(want), "got %s, want %s", at, want)
			}
		})
	}
}

func TestParseScheduleErrors(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"every day", "schedule \"every day\""},
		{"61 * * * *", "61"},
		{"CRON_TZ=UTC @daily", "give the time zone in timezone"},
		{"* * * * * *", "expected exactly 5 fields"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			_, err := ParseSchedule(tc.spec, time.UTC)
			require.ErrorContains(t, err, tc.want)
		})
	}
}
