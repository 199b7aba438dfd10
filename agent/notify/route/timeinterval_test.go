package route

import (
	"context"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/agent/notify"
)

func parseIntervals(t *testing.T, src string) []TimeIntervalConfig {
	t.Helper()
	var out []TimeIntervalConfig
	if err := yaml.Unmarshal([]byte(src), &out); err != nil {
		t.Fatalf("parse %q: %v", src, err)
	}
	return out
}

// nightly is the tax platform's maintenance: 00:00–02:00 Beijing time on
// weekdays, plus all of New Year's Day.
const nightly = `
- name: tax-maintenance
  time_intervals:
    - times: [{start_time: "00:00", end_time: "02:00"}]
      weekdays: ['monday:friday']
      location: Asia/Shanghai
    - days_of_month: ['1']
      months: [january]
      location: Asia/Shanghai
`

func shanghai(t *testing.T, s string) time.Time {
	t.Helper()
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	ts, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestTimeIntervalValidate(t *testing.T) {
	now := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, src, want string
	}{
		{"nightly", nightly, ""},
		{"no name", "- time_intervals: [{weekdays: [monday]}]", "name: is required"},
		{"no entries", "- name: x", "time_intervals: needs at least one entry"},
		{"february 30th", "- name: x\n  time_intervals: [{days_of_month: ['30'], months: [february]}]", "time_intervals.0: never occurs"},
		{"years gone by", "- name: x\n  time_intervals: [{years: ['2019:2021']}]", "time_intervals.0: never occurs"},
		{"years to come", "- name: x\n  time_intervals: [{years: ['2040']}]", ""},
		{"leap day", "- name: x\n  time_intervals: [{days_of_month: ['29'], months: [february]}]", ""},
		{"one good, one never", "- name: x\n  time_intervals: [{weekdays: [monday]}, {days_of_month: ['31'], months: [april]}]", "time_intervals.1: never occurs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := parseIntervals(t, tc.src)
			err := cs[0].Validate(now)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestTimeIntervalParseErrors: what Alertmanager's parser refuses, vigil
// refuses (an unknown time zone, a range that ends before it starts).
func TestTimeIntervalParseErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"- name: x\n  time_intervals: [{location: Asia/Shanghaii}]", "unknown time zone Asia/Shanghaii"},
		{"- name: x\n  time_intervals: [{times: [{start_time: '02:00', end_time: '01:00'}]}]", "start time cannot be equal or greater than end time"},
		{"- name: x\n  time_intervals: [{weekdays: [funday]}]", "funday"},
	} {
		var out []TimeIntervalConfig
		err := yaml.Unmarshal([]byte(tc.src), &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.src, err, tc.want)
		}
	}
}

func TestTimeIntervalsMutedByAndNextChange(t *testing.T) {
	tis := CompileTimeIntervals(parseIntervals(t, nightly+`
- name: office-hours
  time_intervals:
    - times: [{start_time: "09:00", end_time: "18:00"}]
      weekdays: ['monday:friday']
      location: Asia/Shanghai
`))
	mute := &Route{MuteTimeIntervals: []string{"tax-maintenance"}}
	active := &Route{ActiveTimeIntervals: []string{"office-hours"}}
	plain := &Route{}
	for _, tc := range []struct {
		at                  string
		mute, active, plain string
		next                string // next change of tax-maintenance
	}{
		// Friday 2026-12-04, 01:30 in Beijing: inside the window.
		{"2026-12-04 01:30", "tax-maintenance", "office-hours", "", "2026-12-04 02:00"},
		// 02:00 is the end (exclusive).
		{"2026-12-04 02:00", "", "office-hours", "", "2026-12-07 00:00"},
		{"2026-12-04 10:00", "", "", "", "2026-12-07 00:00"},
		// Saturday night: no maintenance at weekends.
		{"2026-12-05 01:00", "", "office-hours", "", "2026-12-07 00:00"},
		// New Year's Day, a Friday in 2027: muted all day.
		{"2027-01-01 15:00", "tax-maintenance", "", "", "2027-01-02 00:00"},
	} {
		now := shanghai(t, tc.at)
		if got := strings.Join(tis.MutedBy(mute, now), ","); got != tc.mute {
			t.Errorf("%s: mute route muted by %q, want %q", tc.at, got, tc.mute)
		}
		if got := strings.Join(tis.MutedBy(active, now), ","); got != tc.active {
			t.Errorf("%s: active route muted by %q, want %q", tc.at, got, tc.active)
		}
		if got := strings.Join(tis.MutedBy(plain, now), ","); got != tc.plain {
			t.Errorf("%s: plain route muted by %q", tc.at, got)
		}
		next, ok := tis.NextChange("tax-maintenance", now)
		if !ok || !next.Equal(shanghai(t, tc.next)) {
			t.Errorf("%s: next change %v (%v), want %s", tc.at, next.In(now.Location()), ok, tc.next)
		}
	}
}

func TestRouteTimeIntervalValidation(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"receiver: oncall\nroutes:\n  - matchers: ['a=\"b\"']\n    mute_time_intervals: [tax-maintenance]", ""},
		{"receiver: oncall\nroutes:\n  - matchers: ['a=\"b\"']\n    mute_time_intervals: [tax-maintenanse]", `routes.0.mute_time_intervals.0: unknown time interval "tax-maintenanse"`},
		{"receiver: oncall\nroutes:\n  - active_time_intervals: [nope]", `routes.0.active_time_intervals.0: unknown time interval "nope"`},
		{"receiver: oncall\nmute_time_intervals: [tax-maintenance]", "the root route cannot have time intervals"},
	} {
		var c Config
		if err := yaml.Unmarshal([]byte(tc.src), &c); err != nil {
			t.Fatal(err)
		}
		err := c.Validate([]string{"oncall"}, []string{"tax-maintenance"})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tc.src, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", tc.src, err, tc.want)
		}
	}
}

// TestDispatcherMaintenanceWindow: a route in its mute window sends
// nothing and records nothing; what still fires when the window ends is
// paged at the next group_interval, and Muted names the window.
func TestDispatcherMaintenanceWindow(t *testing.T) {
	tis := CompileTimeIntervals(parseIntervals(t, nightly))
	var cfg Config
	if err := yaml.Unmarshal([]byte(`receiver: oncall
group_by: [alertname]
group_wait: 30s
group_interval: 5m
repeat_interval: 4h
routes:
  - matchers: ['team="tax"']
    mute_time_intervals: [tax-maintenance]
`), &cfg); err != nil {
		t.Fatal(err)
	}
	r, err := cfg.Compile()
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: shanghai(t, "2026-12-04 01:50")}
	s := &memSink{}
	d := NewDispatcher(Options{Route: r, Sink: s, Now: c.now, TimeIntervals: tis})
	ctx := context.Background()
	tax := firing("UpstreamUnreachable", "team", "tax")
	d.Put([]notify.Alert{tax, firing("DatabaseDown", "team", "db")})
	if m := d.Muted(tax.Labels); strings.Join(m.TimeIntervals, ",") != "tax-maintenance" {
		t.Errorf("Muted = %+v, want the maintenance window named", m)
	}
	c.add(30 * time.Second) // 01:50:30: group_wait over, only the db page goes
	d.FlushDue(ctx)
	if got := strings.Join(s.statuses(), " "); got != "oncall:firing:1" {
		t.Fatalf("in the window sent %q, want only DatabaseDown", got)
	}
	c.add(5 * time.Minute) // 01:55:30: still muted
	d.FlushDue(ctx)
	c.add(5 * time.Minute) // 02:00:30: the window is over
	d.FlushDue(ctx)
	if got := strings.Join(s.statuses(), " "); got != "oncall:firing:1 oncall:firing:1" {
		t.Fatalf("after the window sent %q, want the tax page too", got)
	}
	if m := d.Muted(tax.Labels); len(m.TimeIntervals) != 0 {
		t.Errorf("Muted after the window = %+v", m)
	}
}
