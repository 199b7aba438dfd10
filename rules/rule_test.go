package rules

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/vigil-project/vigil/internal/testenv"
)

type recorder struct {
	mu   sync.Mutex
	sent []Alert
}

func (r *recorder) Send(as []*Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range as {
		r.sent = append(r.sent, *a)
	}
}

func (r *recorder) states() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, a := range r.sent {
		out = append(out, a.State.String())
	}
	return out
}

const testRules = `
groups:
  - name: checks
    interval: 30s
    labels: {team: ops}
    rules:
      - record: check:failing
        expr: vigil_check_success == bool 0
      - alert: CheckFailing
        expr: vigil_check_success == 0
        for: 1m
        keep_firing_for: 1m
        labels: {severity: page}
        annotations:
          summary: "{{ $labels.check }} fails (value {{ $value }}, env {{ $externalLabels.env }})"
`

func setup(t *testing.T, rulesYAML string) (*Manager, *Store, *recorder, func(v float64)) {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "r.yml"), []byte(rulesYAML), 0o644)
	st := NewStore()
	value := 1.0
	var mu sync.Mutex
	rec := &recorder{}
	m := NewManager(Options{Store: st, Engine: newEngine(), Notifier: rec, ResendDelay: time.Minute,
		ExternalLabels: map[string]string{"env": "prod"},
		Scrape: func(ts time.Time) {
			mu.Lock()
			defer mu.Unlock()
			st.Append(labels.FromStrings("__name__", "vigil_check_success", "check", "db", "type", "postgres"), ts.UnixMilli(), value)
		}})
	groups, err := LoadFiles(dir, []string{"*.yml"}, time.Minute, map[string]string{"env": "prod"}, "http://agent:9877", nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Update(groups)
	return m, st, rec, func(v float64) { mu.Lock(); value = v; mu.Unlock() }
}

func alertState(m *Manager) (string, *Alert) {
	for _, g := range m.Groups() {
		for _, r := range g.Rules {
			if a, ok := r.(*AlertingRule); ok {
				for _, al := range a.Alerts() {
					return al.State.String(), &al
				}
			}
		}
	}
	return "none", nil
}

func TestAlertLifecycle(t *testing.T) {
	m, st, rec, set := setup(t, testRules)
	g := m.Groups()[0]
	t0 := time.Unix(1_800_000_000, 0)
	step := func(i int) time.Time { return t0.Add(time.Duration(i) * 30 * time.Second) }
	eval := func(i int) string {
		m.EvalGroup(context.Background(), g, step(i))
		s, _ := alertState(m)
		return s
	}
	if s := eval(0); s != "none" {
		t.Fatalf("healthy: %s", s)
	}
	set(0)
	if s := eval(1); s != "pending" {
		t.Fatalf("t1: %s", s)
	}
	if s := eval(2); s != "pending" {
		t.Fatalf("t2 (30s < for 1m): %s", s)
	}
	if s := eval(3); s != "firing" {
		t.Fatalf("t3 (for reached): %s", s)
	}
	_, a := alertState(m)
	if got := a.Annotations.Get("summary"); got != "db fails (value 0, env prod)" {
		t.Fatalf("summary %q", got)
	}
	if a.Labels.Get("team") != "ops" || a.Labels.Get("severity") != "page" || a.Labels.Get("alertname") != "CheckFailing" || a.Labels.Has("__name__") {
		t.Fatalf("labels %s", a.Labels)
	}
	// The recording rule and ALERTS are in the store.
	if v := instant(t, st, `check:failing{team="ops"}`, step(3)); len(v) != 1 || v[0].F != 1 {
		t.Fatalf("recording rule: %v", v)
	}
	if v := instant(t, st, `ALERTS{alertname="CheckFailing",alertstate="firing"}`, step(3)); len(v) != 1 {
		t.Fatalf("ALERTS: %v", v)
	}
	if v := instant(t, st, `ALERTS_FOR_STATE{alertname="CheckFailing"}`, step(3)); len(v) != 1 || v[0].F != float64(step(1).Unix()) {
		t.Fatalf("ALERTS_FOR_STATE: %v", v)
	}
	// Clears: kept firing for keep_firing_for (1m), then resolved.
	set(1)
	if s := eval(4); s != "firing" {
		t.Fatalf("keep_firing_for: %s", s)
	}
	if s := eval(5); s != "firing" {
		t.Fatalf("keep_firing_for, 30s: %s", s)
	}
	if s := eval(6); s != "inactive" {
		t.Fatalf("resolved: %s", s)
	}
	if s := eval(6 + 31); s != "none" {
		t.Fatalf("resolved alerts are kept 15m, then dropped: %s", s)
	}
	// Sent: firing at t3, again after the 1m resend delay (t5), resolved at t6.
	if got := rec.states(); strings.Join(got, ",") != "firing,firing,inactive" {
		t.Fatalf("sent %v", got)
	}
}

func TestFlappingNeverFires(t *testing.T) {
	m, _, rec, set := setup(t, testRules)
	g := m.Groups()[0]
	t0 := time.Unix(1_800_000_000, 0)
	for i := 0; i < 10; i++ {
		set(float64(i % 2))
		m.EvalGroup(context.Background(), g, t0.Add(time.Duration(i)*30*time.Second))
		if s, _ := alertState(m); s == "firing" {
			t.Fatalf("fired at step %d", i)
		}
	}
	if len(rec.states()) != 0 {
		t.Fatalf("sent %v", rec.states())
	}
}

func TestReloadKeepsState(t *testing.T) {
	m, _, _, set := setup(t, testRules)
	t0 := time.Unix(1_800_000_000, 0)
	set(0)
	m.EvalGroup(context.Background(), m.Groups()[0], t0)
	if s, _ := alertState(m); s != "pending" {
		t.Fatal(s)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "r.yml"), []byte(testRules), 0o644)
	groups, _ := LoadFiles(dir, []string{"*.yml"}, time.Minute, map[string]string{"env": "prod"}, "", nil)
	for _, g := range groups {
		g.File = m.Groups()[0].File // same file, as a reload of the same path
	}
	m.Update(groups)
	m.EvalGroup(context.Background(), m.Groups()[0], t0.Add(time.Minute))
	if s, a := alertState(m); s != "firing" || !a.ActiveAt.Equal(t0) {
		t.Fatalf("unchanged rule after reload: %s", s)
	}
	// A changed rule starts afresh.
	os.WriteFile(filepath.Join(dir, "r.yml"), []byte(strings.ReplaceAll(testRules, "for: 1m", "for: 2m")), 0o644)
	groups, _ = LoadFiles(dir, []string{"*.yml"}, time.Minute, nil, "", nil)
	for _, g := range groups {
		g.File = m.Groups()[0].File
	}
	m.Update(groups)
	if s, _ := alertState(m); s != "none" {
		t.Fatalf("changed rule kept state: %s", s)
	}
}

// TestRuleSeriesGoStale: as in Prometheus, a series a rule wrote at its
// last evaluation and not at this one gets a stale marker, so it is gone
// at once instead of showing for another lookback (5m) — after a reload
// that keeps the rule too.
func TestRuleSeriesGoStale(t *testing.T) {
	const rules = `
groups:
  - name: g
    rules:
      - record: check:down
        expr: vigil_check_success == 0
      - alert: CheckDown
        expr: vigil_check_success == 0
`
	m, st, _, set := setup(t, rules)
	t0 := time.Unix(1_800_000_000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	present := func(ts time.Time, want int) {
		t.Helper()
		for _, q := range []string{`check:down`, `ALERTS`, `ALERTS_FOR_STATE`} {
			if v := instant(t, st, q, ts); len(v) != want {
				t.Errorf("%s at %s: %v, want %d series", q, ts.Sub(t0), v, want)
			}
		}
	}
	set(0)
	m.EvalGroup(context.Background(), m.Groups()[0], at(0))
	present(at(1), 1)
	set(1)
	m.EvalGroup(context.Background(), m.Groups()[0], at(30))
	present(at(31), 0)

	set(0)
	m.EvalGroup(context.Background(), m.Groups()[0], at(60))
	present(at(61), 1)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "r.yml"), []byte(rules), 0o644)
	groups, err := LoadFiles(dir, []string{"*.yml"}, time.Minute, map[string]string{"env": "prod"}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	groups[0].File = m.Groups()[0].File
	m.Update(groups)
	set(1)
	m.EvalGroup(context.Background(), m.Groups()[0], at(90))
	present(at(91), 0)
}

// TestAlertTemplates: label values and annotations are templates over the
// alert's labels and value; text without an action is taken as it is.
func TestAlertTemplates(t *testing.T) {
	m, _, _, set := setup(t, `
groups:
  - name: g
    rules:
      - alert: CheckDown
        expr: vigil_check_success == 0
        labels: {severity: page, owner: "team-{{ $labels.type }}", braces: "a } b {"}
        annotations: {summary: "{{ $labels.check }} at {{ $value }}", runbook: "https://runbooks/check-down"}
`)
	set(0)
	m.EvalGroup(context.Background(), m.Groups()[0], time.Unix(1_800_000_000, 0))
	_, a := alertState(m)
	if a == nil {
		t.Fatal("no alert")
	}
	for _, tc := range []struct{ got, want string }{
		{a.Labels.Get("severity"), "page"},
		{a.Labels.Get("owner"), "team-postgres"},
		{a.Labels.Get("braces"), "a } b {"},
		{a.Annotations.Get("summary"), "db at 0"},
		{a.Annotations.Get("runbook"), "https://runbooks/check-down"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.yml"), []byte("groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: rate(foo[5m]\n"), 0o644)
	if _, err := LoadFiles(dir, []string{"*.yml"}, time.Minute, nil, "", nil); err == nil {
		t.Fatal("bad expression accepted")
	}
}

// memState is an in-memory StateStore.
type memState struct {
	mu sync.Mutex
	m  map[string][]Alert
}

func (s *memState) SaveAlerts(_ context.Context, key string, as []Alert) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = append([]Alert(nil), as...)
	return nil
}

func (s *memState) LoadAlerts(context.Context) (map[string][]Alert, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]Alert{}
	for k, v := range s.m {
		out[k] = append([]Alert(nil), v...)
	}
	return out, nil
}

func (s *memState) KeepRules(_ context.Context, keys []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := map[string]bool{}
	for _, k := range keys {
		keep[k] = true
	}
	for k := range s.m {
		if !keep[k] {
			delete(s.m, k)
		}
	}
	return nil
}

// A restart in the middle of pending keeps the `for` timer: the alert
// fires when `for` has passed since it first became active, not since
// the restart.
func TestRestartDuringPending(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "r.yml"), []byte(testRules), 0o644)
	state := &memState{m: map[string][]Alert{}}
	t0 := time.Unix(1_800_000_000, 0)
	newManager := func() (*Manager, *Store) {
		st := NewStore()
		m := NewManager(Options{Store: st, Engine: newEngine(), Notifier: &recorder{}, State: state,
			Scrape: func(ts time.Time) {
				st.Append(labels.FromStrings("__name__", "vigil_check_success", "check", "db", "type", "postgres"), ts.UnixMilli(), 0)
			}})
		groups, err := LoadFiles(dir, []string{"*.yml"}, time.Minute, nil, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		m.Update(groups)
		return m, st
	}
	m1, _ := newManager()
	m1.EvalGroup(context.Background(), m1.Groups()[0], t0)
	m1.EvalGroup(context.Background(), m1.Groups()[0], t0.Add(30*time.Second))
	if s, _ := alertState(m1); s != "pending" {
		t.Fatalf("before restart: %s", s)
	}
	// "Restart": a new manager over the same state.
	m2, _ := newManager()
	if s, a := alertState(m2); s != "pending" || !a.ActiveAt.Equal(t0) {
		t.Fatalf("restored: %s", s)
	}
	m2.EvalGroup(context.Background(), m2.Groups()[0], t0.Add(60*time.Second))
	if s, _ := alertState(m2); s != "firing" {
		t.Fatalf("for is counted from before the restart: %s", s)
	}
}

func TestGroupLimit(t *testing.T) {
	rules := strings.Replace(testRules, "    interval: 30s\n", "    interval: 30s\n    limit: 0\n", 1)
	m, _, _, set := setup(t, strings.Replace(rules, "limit: 0", "limit: 1", 1))
	set(0)
	g := m.Groups()[0]
	// Two series now match: over the limit of 1.
	m.opts.Store.Append(labels.FromStrings("__name__", "vigil_check_success", "check", "cache", "type", "redis"), time.Unix(1_800_000_000, 0).UnixMilli(), 0)
	m.EvalGroup(context.Background(), g, time.Unix(1_800_000_000, 0))
	info := g.Info()
	if info.Rules[1].Health != "err" || !strings.Contains(info.Rules[1].LastError, "exceeded limit of 1") {
		t.Fatalf("%+v", info.Rules[1])
	}
}

// TestGroupLimitClearsAlerts ports Prometheus's rule: an alerting rule
// with more pending or firing alerts than its group's limit loses all of
// them — none is sent or kept — and fails with "exceeded limit of N with M
// alerts"; back under the limit, its alerts start again as pending.
func TestGroupLimitClearsAlerts(t *testing.T) {
	rules := strings.Replace(testRules, "    interval: 30s\n", "    interval: 30s\n    limit: 1\n", 1)
	rules = strings.Replace(rules, "        for: 1m\n", "", 1)
	m, st, rec, set := setup(t, rules)
	set(0)
	g := m.Groups()[0]
	t0 := time.Unix(1_800_000_000, 0)
	m.EvalGroup(context.Background(), g, t0)
	if got := strings.Join(rec.states(), " "); got != "firing" {
		t.Fatalf("within the limit: sent %q", got)
	}
	// A second failing check: two alerts over a limit of 1.
	st.Append(labels.FromStrings("__name__", "vigil_check_success", "check", "cache", "type", "redis"), t0.Add(30*time.Second).UnixMilli(), 0)
	rec.mu.Lock()
	rec.sent = nil
	rec.mu.Unlock()
	m.EvalGroup(context.Background(), g, t0.Add(30*time.Second))
	info := g.Info()
	if info.Rules[1].Health != "err" || info.Rules[1].LastError != "exceeded limit of 1 with 2 alerts" {
		t.Errorf("over the limit: %+v", info.Rules[1])
	}
	if s, _ := alertState(m); s != "none" {
		t.Errorf("alerts kept over the limit: %s", s)
	}
	if got := rec.states(); len(got) != 0 {
		t.Errorf("alerts sent over the limit: %v", got)
	}
}

// TestEvaluateSoon: a group with a long interval is evaluated again at
// once when asked (a check's result changed), not at its next interval.
func TestEvaluateSoon(t *testing.T) {
	rules := strings.Replace(testRules, "    interval: 30s\n", "    interval: 1h\n", 1)
	m, _, _, _ := setup(t, rules)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	g := m.Groups()[0]
	last := func() time.Time { return g.Info().LastEvaluation }
	testenv.Eventually(t, 10*time.Second, "the first evaluation", func() bool { return !last().IsZero() })
	first := last()
	m.EvaluateSoon()
	testenv.Eventually(t, 10*time.Second, "an evaluation before the hour is up", func() bool { return last().After(first) })
}
