package route

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/timeinterval"

	"github.com/vigil-project/vigil/internal/confkit"
)

// TimeIntervalConfig is a named maintenance window in Alertmanager's
// `time_intervals` format: recurring times, weekdays, days of the month,
// months and years in a time zone. Routes name it in mute_time_intervals
// (no pages while it holds) or active_time_intervals (pages only while it
// holds). The matching is Alertmanager's own package, so a config moves
// between vigil and Alertmanager unchanged.
type TimeIntervalConfig struct {
	Name          string                      `yaml:"name" json:"name"`
	TimeIntervals []timeinterval.TimeInterval `yaml:"time_intervals" json:"time_intervals"`
}

// horizon is how far ahead a time interval is looked for: a window that
// does not occur within it is taken to never occur. Eight years hold every
// leap day a days_of_month/months combination could wait for.
const horizon = 8 * 366 * 24 * time.Hour

// Validate checks one named interval: it has a name and at least one
// entry, and each entry occurs at some time from now on (a window on
// February 30th, or in years gone by, would silently never mute).
func (c *TimeIntervalConfig) Validate(now time.Time) error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, confkit.FieldErrorf("name", "is required"))
	}
	if len(c.TimeIntervals) == 0 {
		errs = append(errs, confkit.FieldErrorf("time_intervals", "needs at least one entry (times, weekdays, days_of_month, months, years, location)"))
	}
	for i, ti := range c.TimeIntervals {
		if ti.Location != nil && ti.Location.Location == nil || slices.ContainsFunc(ti.Times, func(r timeinterval.TimeRange) bool { return r.StartMinute >= r.EndMinute }) {
			continue // a time zone or a time range did not parse: already reported
		}
		if _, ok := nextChange(ti, now, false, horizon); !ok {
			errs = append(errs, confkit.FieldErrorf(fmt.Sprintf("time_intervals.%d", i), "never occurs from now on (checked %d years ahead)", int(horizon/(366*24*time.Hour))))
		}
	}
	return errors.Join(errs...)
}

// TimeIntervals are the compiled maintenance windows by name.
type TimeIntervals struct {
	byName map[string][]timeinterval.TimeInterval
	muter  *timeinterval.Intervener
}

// CompileTimeIntervals builds the set; names must be unique (validated
// by the config).
func CompileTimeIntervals(cs []TimeIntervalConfig) *TimeIntervals {
	m := make(map[string][]timeinterval.TimeInterval, len(cs))
	for _, c := range cs {
		m[c.Name] = c.TimeIntervals
	}
	return &TimeIntervals{byName: m, muter: timeinterval.NewIntervener(m)}
}

// Names lists the configured intervals, sorted.
func (t *TimeIntervals) Names() []string {
	if t == nil {
		return nil
	}
	out := make([]string, 0, len(t.byName))
	for n := range t.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Contains reports whether the named interval holds at now.
func (t *TimeIntervals) Contains(name string, now time.Time) bool {
	if t == nil {
		return false
	}
	ok, _ := t.muter.ContainsTime([]string{name}, now)
	return ok
}

// MutedBy names the intervals that keep a route from paging at now:
// its mute intervals that hold, and — when it has active intervals and
// none holds — those. Empty when the route pages. This is when
// Alertmanager's TimeMuteStage and TimeActiveStage stop a flush.
func (t *TimeIntervals) MutedBy(r *Route, now time.Time) []string {
	if t == nil || r == nil {
		return nil
	}
	var out []string
	for _, name := range r.MuteTimeIntervals {
		if t.Contains(name, now) {
			out = append(out, name)
		}
	}
	if len(r.ActiveTimeIntervals) > 0 && !slices.ContainsFunc(r.ActiveTimeIntervals, func(n string) bool { return t.Contains(n, now) }) {
		out = append(out, r.ActiveTimeIntervals...)
	}
	return out
}

// NextChange is when the named interval next starts (if it does not hold
// at now) or ends (if it does), within about a year; ok is false when it
// does not change within that time.
func (t *TimeIntervals) NextChange(name string, now time.Time) (at time.Time, ok bool) {
	if t == nil {
		return time.Time{}, false
	}
	entries := t.byName[name]
	in := t.Contains(name, now)
	holds := func(at time.Time) bool {
		return slices.ContainsFunc(entries, func(ti timeinterval.TimeInterval) bool { return ti.ContainsTime(at) })
	}
	var cands []time.Time
	for _, ti := range entries {
		cands = append(cands, candidates(ti, now, 400*24*time.Hour)...)
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].Before(cands[j]) })
	for _, c := range cands {
		if holds(c) != in {
			return c, true
		}
	}
	return time.Time{}, false
}

// nextChange finds the first instant from now on, within span, at which
// whether ti holds differs from holds: with holds false, when ti occurs.
func nextChange(ti timeinterval.TimeInterval, now time.Time, holds bool, span time.Duration) (time.Time, bool) {
	if ti.ContainsTime(now) != holds {
		return now, true
	}
	for _, c := range candidates(ti, now, span) {
		if ti.ContainsTime(c) != holds {
			return c, true
		}
	}
	return time.Time{}, false
}

// candidates are the instants after now, up to span, at which ti can
// start or stop holding: midnight and each time range's start and end, in
// ti's time zone. Nothing else in a time interval changes within a day.
// An interval restricted to years starts the scan at the first of them
// (and looks span beyond it).
func candidates(ti timeinterval.TimeInterval, now time.Time, span time.Duration) []time.Time {
	loc := time.UTC
	if ti.Location != nil {
		loc = ti.Location.Location
	}
	local := now.In(loc)
	day := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, loc)
	if len(ti.Years) > 0 {
		first := ti.Years[0].Begin
		for _, y := range ti.Years {
			first = min(first, y.Begin)
		}
		if start := time.Date(first, time.January, 1, 0, 0, 0, 0, loc); start.After(day) {
			day = start
		}
	}
	minutes := []int{0}
	for _, tr := range ti.Times {
		minutes = append(minutes, tr.StartMinute, tr.EndMinute)
	}
	end := now.Add(span)
	if day.After(now) {
		end = day.Add(span)
	}
	var out []time.Time
	for ; day.Before(end); day = day.AddDate(0, 0, 1) {
		for _, m := range minutes {
			// Wall-clock minutes, as ContainsTime reads them (a DST day
			// is not 24 hours long).
			c := time.Date(day.Year(), day.Month(), day.Day(), m/60, m%60, 0, 0, loc)
			if c.After(now) && !c.After(end) {
				out = append(out, c)
			}
		}
	}
	return out
}

// Window is a configured time interval as the status page and the API
// show it.
type Window struct {
	Name string `json:"name"`
	// Active: the interval holds now.
	Active bool `json:"active"`
	// NextChange is when it next ends (active) or starts; zero if not
	// within a year.
	NextChange time.Time `json:"next_change,omitzero"`
	// MutedRoutes and ActiveRoutes describe the routes that name it in
	// mute_time_intervals and active_time_intervals.
	MutedRoutes  []string `json:"muted_routes,omitempty"`
	ActiveRoutes []string `json:"active_routes,omitempty"`
}

// Maintenance lists the time intervals at now, by name, with the routes
// of the tree under root that use them.
func Maintenance(root *Route, tis *TimeIntervals, now time.Time) []Window {
	var out []Window
	for _, name := range tis.Names() {
		w := Window{Name: name, Active: tis.Contains(name, now)}
		w.NextChange, _ = tis.NextChange(name, now)
		root.walk(func(r *Route) {
			if slices.Contains(r.MuteTimeIntervals, name) {
				w.MutedRoutes = append(w.MutedRoutes, r.describe())
			}
			if slices.Contains(r.ActiveTimeIntervals, name) {
				w.ActiveRoutes = append(w.ActiveRoutes, r.describe())
			}
		})
		out = append(out, w)
	}
	return out
}

func (r *Route) walk(fn func(*Route)) {
	if r == nil {
		return
	}
	fn(r)
	for _, c := range r.Routes {
		c.walk(fn)
	}
}

// describe names a route by its receiver and matchers.
func (r *Route) describe() string {
	ms := make([]string, len(r.Matchers))
	for i, m := range r.Matchers {
		ms[i] = m.String()
	}
	return r.Receiver + " {" + strings.Join(ms, ", ") + "}"
}
