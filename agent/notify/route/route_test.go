package route

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/store"
)

const treeYAML = `
receiver: default
group_by: [alertname]
group_wait: 10s
group_interval: 1m
repeat_interval: 1h
routes:
  - matchers: ['severity="critical"']
    receiver: pager
    continue: true
  - matchers: ['severity=~"critical|warning"', 'team="db"']
    receiver: dba
    group_by: [alertname, instance]
    routes:
      - matchers: ['env="test"']
        receiver: devnull
  - matchers: ['check=~"invoice-.*"']
    receiver: invoice
    group_by: ["..."]
`

func tree(t *testing.T) *Route {
	t.Helper()
	var c Config
	if err := yaml.Unmarshal([]byte(treeYAML), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate([]string{"default", "pager", "dba", "devnull", "invoice"}, nil); err != nil {
		t.Fatal(err)
	}
	r, err := c.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRouteMatch(t *testing.T) {
	r := tree(t)
	for _, tc := range []struct {
		labels map[string]string
		want   []string
	}{
		{map[string]string{"alertname": "X"}, []string{"default"}},
		// continue with no later match: only the matching child, as in Alertmanager.
		{map[string]string{"alertname": "X", "severity": "critical"}, []string{"pager"}},
		{map[string]string{"alertname": "X", "severity": "critical", "team": "db"}, []string{"pager", "dba"}},
		{map[string]string{"alertname": "X", "severity": "warning", "team": "db", "env": "test"}, []string{"devnull"}},
		{map[string]string{"alertname": "X", "check": "invoice-qr"}, []string{"invoice"}},
		{map[string]string{"alertname": "X", "severity": "critical", "check": "invoice-qr"}, []string{"pager", "invoice"}},
	} {
		t.Run(fmt.Sprint(tc.labels), func(t *testing.T) {
			var got []string
			for _, m := range r.Match(tc.labels) {
				got = append(got, m.Receiver)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	// Inherited and overridden settings.
	dba := r.Routes[1]
	if dba.GroupWait != 10*time.Second || dba.RepeatInterval != time.Hour || strings.Join(dba.GroupBy, ",") != "alertname,instance" {
		t.Errorf("dba route %+v", dba)
	}
	if dev := dba.Routes[0]; strings.Join(dev.GroupBy, ",") != "alertname,instance" {
		t.Errorf("devnull inherits group_by: %+v", dev)
	}
	inv := r.Routes[2]
	if !inv.GroupByAll || len(inv.GroupLabels(map[string]string{"a": "1", "b": "2"})) != 2 {
		t.Errorf("group_by ... : %+v", inv)
	}
}

func TestRouteValidate(t *testing.T) {
	for _, tc := range []struct {
		yaml, want string
	}{
		{`receiver: nobody`, `receiver: unknown receiver "nobody"`},
		{`group_by: [a]`, `receiver: the root route needs a receiver`},
		{"receiver: default\nmatchers: ['a=\"b\"']", `matchers: the root route matches every alert`},
		{"receiver: default\nroutes: [{matchers: ['a=~(']}]", `routes.0.matchers.0: bad matcher "a=~("`},
		{"receiver: default\ngroup_interval: 0s", `group_interval: must be greater than 0`},
		{"receiver: default\ngroup_by: ['...', a]", `group_by: "..." groups by every label`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			var c Config
			if err := yaml.Unmarshal([]byte(tc.yaml), &c); err != nil {
				t.Fatal(err)
			}
			err := c.Validate([]string{"default"}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

// memSink records deliveries and keeps the notification log in memory.
type memSink struct {
	mu   sync.Mutex
	sent []*notify.Message
	log  map[string]LogEntry
	fail bool
}

func (s *memSink) Deliver(_ context.Context, batch []Notification) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("disk full")
	}
	for _, n := range batch {
		if len(n.Message.Alerts) > 0 { // none: the entry only
			s.sent = append(s.sent, n.Message)
		}
		if s.log == nil {
			s.log = map[string]LogEntry{}
		}
		s.log[n.Message.Receiver+"|"+n.Message.GroupKey] = n.Entry
	}
	return nil
}

func (s *memSink) LastSent(_ context.Context, receiver, key string) (LogEntry, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.log[receiver+"|"+key]
	return e, ok, nil
}

func (s *memSink) statuses() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.sent {
		out = append(out, fmt.Sprintf("%s:%s:%d", m.Receiver, m.Status(), len(m.Alerts)))
	}
	return out
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func firing(name string, extra ...string) notify.Alert {
	l := map[string]string{"alertname": name}
	for i := 0; i+1 < len(extra); i += 2 {
		l[extra[i]] = extra[i+1]
	}
	return notify.Alert{Labels: l, EndsAt: time.Unix(1<<40, 0)}
}
func resolvedAt(a notify.Alert, t time.Time) notify.Alert { a.EndsAt = t; return a }

func newTestDispatcher(t *testing.T, c *clock, sink Sink, opts Options) *Dispatcher {
	t.Helper()
	var cfg Config
	yaml.Unmarshal([]byte("receiver: oncall\ngroup_by: [alertname]\ngroup_wait: 30s\ngroup_interval: 5m\nrepeat_interval: 4h"), &cfg)
	r, err := cfg.Compile()
	if err != nil {
		t.Fatal(err)
	}
	opts.Route, opts.Sink, opts.Now = r, sink, c.now
	return NewDispatcher(opts)
}

// TestDispatcherTimers walks group_wait, group_interval, repeat_interval
// and resolve with a fake clock.
func TestDispatcherTimers(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	s := &memSink{}
	d := newTestDispatcher(t, c, s, Options{})
	ctx := context.Background()
	step := func(dt time.Duration, want ...string) {
		t.Helper()
		c.add(dt)
		d.FlushDue(ctx)
		if got := s.statuses(); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("after +%s: sent %v, want %v", dt, got, want)
		}
	}
	d.Put([]notify.Alert{firing("A", "i", "1")})
	step(10 * time.Second)                                              // inside group_wait
	d.Put([]notify.Alert{firing("A", "i", "2")})                        // joins the group
	step(20*time.Second, "oncall:firing:2")                             // group_wait over: both in one page
	d.Put([]notify.Alert{firing("A", "i", "1"), firing("A", "i", "2")}) // re-sent, unchanged
	step(5*time.Minute, "oncall:firing:2")                              // group_interval: nothing new, no page
	d.Put([]notify.Alert{firing("A", "i", "3")})
	step(time.Minute, "oncall:firing:2")                      // waits for group_interval
	step(4*time.Minute, "oncall:firing:2", "oncall:firing:3") // new alert → update
	d.Put([]notify.Alert{resolvedAt(firing("A", "i", "3"), c.t)})
	step(5*time.Minute, "oncall:firing:2", "oncall:firing:3", "oncall:firing:3")                  // firing set changed: 2 firing + 1 resolved
	step(4*time.Hour, "oncall:firing:2", "oncall:firing:3", "oncall:firing:3", "oncall:firing:2") // repeat_interval
	d.Put([]notify.Alert{resolvedAt(firing("A", "i", "1"), c.t), resolvedAt(firing("A", "i", "2"), c.t)})
	step(5*time.Minute, "oncall:firing:2", "oncall:firing:3", "oncall:firing:3", "oncall:firing:2", "oncall:resolved:2")
	step(time.Hour, "oncall:firing:2", "oncall:firing:3", "oncall:firing:3", "oncall:firing:2", "oncall:resolved:2")
}

// TestDispatcherRestartDoesNotRepage: a new dispatcher over the same log
// (a restarted agent) stays quiet for alerts already paged.
func TestDispatcherRestartDoesNotRepage(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	s := &memSink{}
	ctx := context.Background()
	d := newTestDispatcher(t, c, s, Options{})
	d.Put([]notify.Alert{firing("A")})
	c.add(30 * time.Second)
	d.FlushDue(ctx)
	d2 := newTestDispatcher(t, c, s, Options{})
	d2.Put([]notify.Alert{firing("A")})
	c.add(30 * time.Second)
	d2.FlushDue(ctx)
	if got := s.statuses(); len(got) != 1 {
		t.Fatalf("restart paged again: %v", got)
	}
	d2.Put([]notify.Alert{resolvedAt(firing("A"), c.t)})
	c.add(5 * time.Minute) // group_interval
	d2.FlushDue(ctx)
	if got := s.statuses(); strings.Join(got, " ") != "oncall:firing:1 oncall:resolved:1" {
		t.Fatalf("resolve after restart: %v", got)
	}
}

func TestDispatcherSendResolvedOffAndSinkFailure(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	s := &memSink{}
	ctx := context.Background()
	d := newTestDispatcher(t, c, s, Options{SendResolved: func(string) bool { return false }})
	d.Put([]notify.Alert{firing("A")})
	s.fail = true
	c.add(30 * time.Second)
	d.FlushDue(ctx) // queueing failed: retried, not lost
	s.fail = false
	c.add(10 * time.Second)
	d.FlushDue(ctx)
	d.Put([]notify.Alert{resolvedAt(firing("A"), c.t)})
	c.add(5 * time.Minute)
	d.FlushDue(ctx)
	if got := s.statuses(); strings.Join(got, " ") != "oncall:firing:1" {
		t.Fatalf("got %v", got)
	}
}

// TestRefireWithinRepeatInterval: an alert that fires, resolves and fires
// again inside repeat_interval is paged again, with send_resolved false
// too: the all-resolved flush clears the notification log whatever
// send_resolved says (Alertmanager's DedupStage), it just sends nothing.
func TestRefireWithinRepeatInterval(t *testing.T) {
	for _, tc := range []struct {
		sendResolved bool
		want         string
	}{
		{false, "oncall:firing:1 oncall:firing:1"},
		{true, "oncall:firing:1 oncall:resolved:1 oncall:firing:1"},
	} {
		t.Run(fmt.Sprintf("send_resolved=%v", tc.sendResolved), func(t *testing.T) {
			c := &clock{t: time.Unix(1_700_000_000, 0)}
			s := &memSink{}
			d := newTestDispatcher(t, c, s, Options{SendResolved: func(string) bool { return tc.sendResolved }})
			ctx := context.Background()
			d.Put([]notify.Alert{firing("InvoiceQRFailing")})
			c.add(30 * time.Second)
			d.FlushDue(ctx)
			d.Put([]notify.Alert{resolvedAt(firing("InvoiceQRFailing"), c.t)})
			c.add(5 * time.Minute)
			d.FlushDue(ctx)
			d.Put([]notify.Alert{firing("InvoiceQRFailing")})
			c.add(30 * time.Second)
			d.FlushDue(ctx)
			if got := strings.Join(s.statuses(), " "); got != tc.want {
				t.Errorf("sent %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPartialResolveWithoutSendResolved: with send_resolved false, one
// alert of a group resolving while another fires is not a notification
// (the receiver would only get the same firing alert again), as in
// Alertmanager; a new alert in the group is.
func TestPartialResolveWithoutSendResolved(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	s := &memSink{}
	var cfg Config
	yaml.Unmarshal([]byte("receiver: oncall\ngroup_by: [team]\ngroup_wait: 30s\ngroup_interval: 5m\nrepeat_interval: 4h"), &cfg)
	r, err := cfg.Compile()
	if err != nil {
		t.Fatal(err)
	}
	d := NewDispatcher(Options{Route: r, Sink: s, Now: c.now, SendResolved: func(string) bool { return false }})
	ctx := context.Background()
	d.Put([]notify.Alert{firing("A", "team", "ops"), firing("B", "team", "ops")})
	c.add(30 * time.Second)
	d.FlushDue(ctx)
	d.Put([]notify.Alert{resolvedAt(firing("B", "team", "ops"), c.t)})
	c.add(5 * time.Minute)
	d.FlushDue(ctx)
	d.Put([]notify.Alert{firing("C", "team", "ops")})
	c.add(5 * time.Minute)
	d.FlushDue(ctx)
	if got := strings.Join(s.statuses(), " "); got != "oncall:firing:2 oncall:firing:2" {
		t.Errorf("sent %q, want the first group and the one with C", got)
	}
}

func TestInhibition(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	s := &memSink{}
	in, err := (&InhibitConfig{SourceMatchers: Matchers{`alertname="DatabaseDown"`}, TargetMatchers: Matchers{`severity="warning"`}, Equal: []string{"site"}}).Compile()
	if err != nil {
		t.Fatal(err)
	}
	d := newTestDispatcher(t, c, s, Options{Inhibit: []*Inhibitor{in}})
	d.Put([]notify.Alert{
		firing("DatabaseDown", "site", "sh", "severity", "warning"), // matches both sides: never inhibits itself
		firing("InvoiceQRFailing", "site", "sh", "severity", "warning"),
		firing("InvoiceQRFailing", "site", "bj", "severity", "warning"),
	})
	c.add(30 * time.Second)
	d.FlushDue(context.Background())
	var got []string
	for _, m := range s.sent {
		for _, a := range m.Alerts {
			got = append(got, a.Labels["alertname"]+"/"+a.Labels["site"])
		}
	}
	if strings.Join(got, " ") != "DatabaseDown/sh InvoiceQRFailing/bj" {
		t.Errorf("sent %v", got)
	}
	if m := d.Muted(map[string]string{"alertname": "InvoiceQRFailing", "site": "sh", "severity": "warning"}); !m.Inhibited {
		t.Error("Muted does not report the inhibition")
	}
}

// TestTwoSidedInhibition: two alerts that each match both sides of an
// inhibit rule do not mute each other (Alertmanager: both stay active), but
// either still mutes an alert that matches the target side only.
func TestTwoSidedInhibition(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	s := &memSink{}
	in, err := (&InhibitConfig{SourceMatchers: Matchers{`alertname=~"Host.*"`}, TargetMatchers: Matchers{`team="ops"`}, Equal: []string{"host"}}).Compile()
	if err != nil {
		t.Fatal(err)
	}
	d := newTestDispatcher(t, c, s, Options{Inhibit: []*Inhibitor{in}})
	d.Put([]notify.Alert{
		firing("HostDown", "host", "db1", "team", "ops"),
		firing("HostDiskFull", "host", "db1", "team", "ops"),
		firing("InvoiceQRFailing", "host", "db1", "team", "ops"),
	})
	c.add(30 * time.Second)
	d.FlushDue(context.Background())
	var got []string
	for _, m := range s.sent {
		for _, a := range m.Alerts {
			got = append(got, a.Labels["alertname"])
		}
	}
	sort.Strings(got)
	if strings.Join(got, " ") != "HostDiskFull HostDown" {
		t.Errorf("sent %v, want both two-sided alerts and not the target-only one", got)
	}
}

func TestDrillRouting(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	for _, tc := range []struct {
		drillReceiver string
		want          string
		dropped       int
	}{
		{"", "", 1},
		{"drills", "drills:firing:1", 0},
	} {
		t.Run("drill_receiver="+tc.drillReceiver, func(t *testing.T) {
			s := &memSink{}
			dropped := 0
			d := newTestDispatcher(t, c, s, Options{DrillReceiver: tc.drillReceiver, OnDrop: func() { dropped++ }})
			d.Put([]notify.Alert{firing("InvoiceQRFailing", "drill", "true")})
			c.add(time.Minute)
			d.FlushDue(context.Background())
			if got := strings.Join(s.statuses(), " "); got != tc.want || dropped != tc.dropped {
				t.Errorf("sent %q dropped %d, want %q %d", got, dropped, tc.want, tc.dropped)
			}
		})
	}
}

// TestDrillGroupsPerDrill: a second drill's alert is its own group, paged
// after group_wait, not held back by the first drill's group_interval.
func TestDrillGroupsPerDrill(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	s := &memSink{}
	d := newTestDispatcher(t, c, s, Options{DrillReceiver: "drills"})
	d.Put([]notify.Alert{firing("InvoiceQRFailing", "drill", "true", "drill_id", "d1")})
	c.add(time.Minute)
	d.FlushDue(context.Background())
	d.Put([]notify.Alert{firing("InvoiceQRFailing", "drill", "true", "drill_id", "d2")})
	c.add(time.Minute) // past group_wait, well inside group_interval
	d.FlushDue(context.Background())
	if got := strings.Join(s.statuses(), " "); got != "drills:firing:1 drills:firing:1" {
		t.Errorf("sent %q, want one page per drill", got)
	}
}

// TestDrillTimedAsTheRealRoute: a drill alert takes the timings of the
// route the real alert would take (group_wait 0s for pages here), goes to
// the drill receiver once even where routes continue, and ignores the
// route's maintenance window.
func TestDrillTimedAsTheRealRoute(t *testing.T) {
	var cfg Config
	if err := yaml.Unmarshal([]byte(`receiver: oncall
group_by: [alertname]
group_wait: 30s
routes:
  - matchers: ['severity="page"']
    group_wait: 0s
    continue: true
    mute_time_intervals: [always]
  - matchers: ['severity="page"']
    receiver: chat
`), &cfg); err != nil {
		t.Fatal(err)
	}
	r, err := cfg.Compile()
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	s := &memSink{}
	tis := CompileTimeIntervals(parseIntervals(t, "- name: always\n  time_intervals: [{}]"))
	d := NewDispatcher(Options{Route: r, Sink: s, Now: c.now, DrillReceiver: "drills", TimeIntervals: tis})
	d.Put([]notify.Alert{firing("InvoiceQRFailing", "severity", "page", "drill", "true", "drill_id", "d1"),
		firing("LogErrors", "drill", "true", "drill_id", "d1")})
	d.FlushDue(context.Background())
	if got := strings.Join(s.statuses(), " "); got != "drills:firing:1" {
		t.Fatalf("at once sent %q, want the page drill alert only", got)
	}
	c.add(30 * time.Second)
	d.FlushDue(context.Background())
	if got := strings.Join(s.statuses(), " "); got != "drills:firing:1 drills:firing:1" {
		t.Errorf("after 30s sent %q, want the other after the root's group_wait", got)
	}
}

// fakeSilenceStore keeps silences in memory.
type fakeSilenceStore struct{ rows map[string]store.Silence }

func (f *fakeSilenceStore) SaveSilence(_ context.Context, s store.Silence) error {
	f.rows[s.ID] = s
	return nil
}
func (f *fakeSilenceStore) Silences(_ context.Context, since time.Time) ([]store.Silence, error) {
	var out []store.Silence
	for _, r := range f.rows {
		if r.EndsAt.After(since) {
			out = append(out, r)
		}
	}
	return out, nil
}

func TestSilences(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	st := &fakeSilenceStore{rows: map[string]store.Silence{}}
	ctx := context.Background()
	sil, err := NewSilences(ctx, st, c.now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		s    Silence
		want string
	}{
		{Silence{Matchers: Matchers{`alertname="A"`}, EndsAt: c.t.Add(time.Hour), Comment: "x"}, "author"},
		{Silence{Matchers: Matchers{`alertname="A"`}, EndsAt: c.t.Add(time.Hour), CreatedBy: "li"}, "comment"},
		{Silence{Matchers: Matchers{`alertname=~".*"`}, EndsAt: c.t.Add(time.Hour), CreatedBy: "li", Comment: "x"}, "every alert"},
		{Silence{Matchers: Matchers{`alertname="A"`}, EndsAt: c.t.Add(-time.Minute), CreatedBy: "li", Comment: "x"}, "future"},
		{Silence{Matchers: Matchers{`alertname="A"`}, EndsAt: c.t.Add(60 * 24 * time.Hour), CreatedBy: "li", Comment: "x"}, "at most"},
		{Silence{EndsAt: c.t.Add(time.Hour), CreatedBy: "li", Comment: "x"}, "matcher"},
	} {
		if _, err := sil.Add(ctx, tc.s); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Add(%+v) = %v, want error containing %q", tc.s, err, tc.want)
		}
	}
	added, err := sil.Add(ctx, Silence{Matchers: Matchers{`check="invoice-qr"`}, EndsAt: c.t.Add(time.Hour), CreatedBy: "li", Comment: "maintenance"})
	if err != nil || added.Status != "active" {
		t.Fatalf("Add: %+v %v", added, err)
	}
	s := &memSink{}
	d := newTestDispatcher(t, c, s, Options{Silences: sil})
	d.Put([]notify.Alert{firing("A", "check", "invoice-qr"), firing("B", "check", "db")})
	c.add(time.Minute)
	d.FlushDue(ctx)
	if got := strings.Join(s.statuses(), " "); got != "oncall:firing:1" || s.sent[0].Alerts[0].Labels["alertname"] != "B" {
		t.Fatalf("silenced alert was sent: %v", got)
	}
	// Reloaded from the store (a restart), then expired.
	sil2, err := NewSilences(ctx, st, c.now)
	if err != nil || len(sil2.Silenced(map[string]string{"check": "invoice-qr"}, c.t)) != 1 {
		t.Fatalf("silence not restored: %v", err)
	}
	if err := sil2.Expire(ctx, added.ID); err != nil {
		t.Fatal(err)
	}
	if err := sil2.Expire(ctx, added.ID); !errors.Is(err, ErrNoSilence) {
		t.Errorf("second expire: %v", err)
	}
	if ls := sil2.List(); len(ls) != 1 || ls[0].Status != "expired" {
		t.Errorf("list after expire: %+v", ls)
	}
}

// TestMatcherSyntax: the matcher forms Alertmanager accepts, quoted and
// unquoted, and what it refuses. The parser is Alertmanager's (go.mod's
// version, in its default fallback mode); the verdicts also agree with
// amtool 0.25's check-config except for label names, which the UTF-8
// syntax of Alertmanager 0.27+ no longer restricts (`1a=b`).
func TestMatcherSyntax(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want: the matcher's String(), "" for an error
	}{
		{`alertname="InvoiceQRFailing"`, `alertname="InvoiceQRFailing"`},
		{`alertname=InvoiceQRFailing`, `alertname="InvoiceQRFailing"`},
		{`severity!=warning`, `severity!="warning"`},
		{`alertname=~Invoice.*`, `alertname=~"Invoice.*"`},
		{`check !~ "invoice_.*"`, `check!~"invoice_.*"`},
		{` team = ops `, `team="ops"`},
		{`a="x\"y"`, `a="x\"y"`},
		{`1a=b`, `"1a"="b"`},
		{`a=b"c`, ""},
		{`a==b`, `a="=b"`}, // amtool 0.25 accepts it too, value "=b"
		{`a=~(`, ""},
	} {
		m, err := ParseMatcher(tc.in)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("%s: accepted as %s", tc.in, m)
		case tc.want != "" && err != nil:
			t.Errorf("%s: %v", tc.in, err)
		case tc.want != "" && m.String() != tc.want:
			t.Errorf("%s = %s, want %s", tc.in, m, tc.want)
		}
	}
}

func TestMatchesNothing(t *testing.T) {
	known := []map[string]string{
		{"alertname": "InvoiceQRFailing", "check": "invoice_qr", "severity": "critical"},
		{"__name__": "vigil_check_success", "check": "invoice_sync_primary", "type": "invoice_sync"},
	}
	for _, tc := range []struct {
		matchers []string
		nothing  bool
		hint     string
	}{
		{[]string{`check="invoice_qr"`}, false, ""},
		{[]string{`check=~"invoice_.*"`, `severity="critical"`}, false, ""},
		{[]string{`check="invoice-qr"`}, true, `check is never "invoice-qr"; closest values: ["invoice_qr"`},
		{[]string{`chekc="invoice_qr"`}, true, `no alert or series has the label "chekc"; did you mean "check"?`},
		{[]string{`alertname="InvoiceQRFailing"`, `severity="warning"`}, true, `severity is never "warning"`},
	} {
		ms, err := Matchers(tc.matchers).Parse()
		if err != nil {
			t.Fatal(err)
		}
		nothing, hints := MatchesNothing(ms, known)
		if nothing != tc.nothing || (tc.hint != "" && !strings.Contains(strings.Join(hints, "\n"), tc.hint)) {
			t.Errorf("%v: nothing=%v hints %q, want %v and %q", tc.matchers, nothing, hints, tc.nothing, tc.hint)
		}
	}
}

// TestDependencyHoldsBackAlerts: while the check an alert's check depends
// on fails, the alert is held back like an inhibited one; a page sent
// before keeps no repeat, and the resolve still goes out.
func TestDependencyHoldsBackAlerts(t *testing.T) {
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	s := &memSink{}
	netDown := false
	d := newTestDispatcher(t, c, s, Options{Dependency: func(l map[string]string) string {
		if l["check"] == "invoice_sync" && netDown {
			return "tax-network"
		}
		return ""
	}})
	ctx := context.Background()
	step := func(dt time.Duration, want ...string) {
		t.Helper()
		c.add(dt)
		d.FlushDue(ctx)
		if got := s.statuses(); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("after +%s: sent %v, want %v", dt, got, want)
		}
	}
	// The network goes first: invoice_sync's alert is held back, the
	// network's pages.
	netDown = true
	d.Put([]notify.Alert{firing("CheckFailing", "check", "tax-network"), firing("SyncFailing", "check", "invoice_sync")})
	step(30*time.Second, "oncall:firing:1")
	if m := d.Muted(map[string]string{"alertname": "SyncFailing", "check": "invoice_sync"}); m.DependencyFailed != "tax-network" {
		t.Errorf("Muted = %+v, want the dependency named", m)
	}
	step(4*time.Hour, "oncall:firing:1", "oncall:firing:1") // the network's repeat; sync still held
	// The network recovers, sync still fails: now it pages.
	netDown = false
	d.Put([]notify.Alert{resolvedAt(firing("CheckFailing", "check", "tax-network"), c.t)})
	step(5*time.Minute, "oncall:firing:1", "oncall:firing:1", "oncall:resolved:1", "oncall:firing:1")
	// The network fails again; sync's alert resolves while held back: the
	// resolve of what was paged goes out.
	netDown = true
	d.Put([]notify.Alert{resolvedAt(firing("SyncFailing", "check", "invoice_sync"), c.t)})
	step(5*time.Minute, "oncall:firing:1", "oncall:firing:1", "oncall:resolved:1", "oncall:firing:1", "oncall:resolved:1")
}
