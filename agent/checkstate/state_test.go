package checkstate

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/lastrun"
	"github.com/vigil-project/vigil/agent/scheduler"
	"github.com/vigil-project/vigil/probes"
	"github.com/vigil-project/vigil/probes/network"
)

func TestDiagnosticLines(t *testing.T) {
	got := DiagnosticLines(map[string]any{
		"traceroute": []network.Hop{{TTL: 1, Addr: "10.0.0.1", RTTSeconds: 0.0003}, {TTL: 2}},
		"violations": []string{"disk_low: / 3% free"},
		"note":       "replica lagging",
	})
	want := []string{"note: replica lagging", "traceroute: " + network.Hop{TTL: 1, Addr: "10.0.0.1", RTTSeconds: 0.0003}.String(),
		"traceroute: " + network.Hop{TTL: 2}.String(), "violations: disk_low: / 3% free"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestSetReportsStaleChecks(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{Checks: []config.Check{{Name: "a"}, {Name: "b"}, {Name: "c"}}}
	s := New(cfg, []scheduler.Job{{Name: "a", Fingerprint: scheduler.Fingerprint{49}}, {Name: "b", Fingerprint: scheduler.Fingerprint{49}}, {Name: "c", Fingerprint: scheduler.Fingerprint{49}}})
	for _, n := range []string{"a", "b", "c"} {
		s.Record(n, lastrun.From(probes.Result{Success: true}))
	}
	cfg2 := &config.Config{Checks: []config.Check{{Name: "a"}, {Name: "b"}}}
	stale := s.Set(cfg2, []scheduler.Job{{Name: "a", Fingerprint: scheduler.Fingerprint{49}}, {Name: "b", Fingerprint: scheduler.Fingerprint{50}}})
	if strings.Join(stale, ",") != "b,c" {
		t.Errorf("stale %v, want b (changed) and c (removed)", stale)
	}
	if _, ok := s.Last("c"); ok {
		t.Error("a removed check kept its last result")
	}
	if _, ok := s.Last("b"); !ok {
		t.Error("a changed check lost its last result")
	}
	if s.CheckInfo("c") != nil || s.CheckInfo("b") == nil {
		t.Error("CheckInfo does not follow the config")
	}
}

func TestWarm(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{Checks: []config.Check{{Name: "a"}, {Name: "b"}}}
	cfg.Global.StartupSplay = model.Duration(time.Hour)
	s := New(cfg, []scheduler.Job{{Name: "a"}, {Name: "b"}})
	s.MarkRan("a")
	if s.Warm() {
		t.Fatal("warm before every check ran")
	}
	s.MarkRan("b")
	if !s.Warm() {
		t.Fatal("not warm after every check ran")
	}
	s2 := New(cfg, []scheduler.Job{{Name: "a"}})
	s2.started = time.Now().Add(-2 * time.Hour)
	if !s2.Warm() {
		t.Error("not warm after the warm-up limit")
	}
}

func TestFailingDependency(t *testing.T) {
	t.Parallel()
	// sync -> gateway -> net; sync -> db; cycle-free, but db lists sync
	// back through a stale config would not loop either (seen).
	cfg := &config.Config{Checks: []config.Check{
		{Name: "net"},
		{Name: "gateway", DependsOn: []string{"net"}},
		{Name: "db"},
		{Name: "sync", DependsOn: []string{"gateway", "db"}},
		{Name: "loop", DependsOn: []string{"loop2"}},
		{Name: "loop2", DependsOn: []string{"loop"}},
	}}
	s := New(cfg, nil)
	set := func(name string, ok bool) { s.Record(name, lastrun.From(probes.Result{Success: ok})) }
	for _, c := range cfg.Checks {
		set(c.Name, true)
	}
	tests := []struct {
		failing []string
		check   string
		want    string
	}{
		{nil, "sync", ""},
		{[]string{"db"}, "sync", "db"},
		{[]string{"gateway"}, "sync", "gateway"},
		{[]string{"gateway", "net"}, "sync", "net"}, // the root cause
		{[]string{"net"}, "sync", ""},               // gateway passed: net is not why sync fails
		{[]string{"net"}, "gateway", "net"},
		{[]string{"loop", "loop2"}, "loop", "loop2"},
		{[]string{"db"}, "nosuch", ""},
	}
	for _, tt := range tests {
		for _, c := range cfg.Checks {
			set(c.Name, true)
		}
		for _, f := range tt.failing {
			set(f, false)
		}
		if got := s.FailingDependency(tt.check); got != tt.want {
			t.Errorf("failing %v: FailingDependency(%s) = %q, want %q", tt.failing, tt.check, got, tt.want)
		}
	}
}

// A reload that reorders, adds and removes checks keeps each kept check's
// own last result; a late result of a removed check is dropped rather than
// kept for a check that no longer exists.
func TestSetKeepsResultsByName(t *testing.T) {
	t.Parallel()
	fp := scheduler.Fingerprint{1}
	jobs := func(names ...string) []scheduler.Job {
		var js []scheduler.Job
		for _, n := range names {
			js = append(js, scheduler.Job{Name: n, Fingerprint: fp})
		}
		return js
	}
	cfg := func(names ...string) *config.Config {
		c := &config.Config{}
		for _, n := range names {
			c.Checks = append(c.Checks, config.Check{Name: n})
		}
		return c
	}
	s := New(cfg("a", "b", "c"), jobs("a", "b", "c"))
	for _, n := range []string{"a", "b", "c"} {
		s.Record(n, lastrun.From(probes.Result{Message: n}))
	}
	if stale := s.Set(cfg("d", "c", "a"), jobs("d", "c", "a")); strings.Join(stale, ",") != "b" {
		t.Errorf("stale %v, want b", stale)
	}
	for _, n := range []string{"a", "c"} {
		if r, ok := s.Last(n); !ok || r.Message != n {
			t.Errorf("Last(%s) = %q, %v after the reload", n, r.Message, ok)
		}
	}
	if _, ok := s.Last("d"); ok {
		t.Error("a new check has a last result before its first run")
	}
	s.Record("b", lastrun.From(probes.Result{Message: "late"}))
	if _, ok := s.Last("b"); ok {
		t.Error("a late result of a removed check was kept")
	}
	if info := s.CheckInfo("a"); info == nil || info.Message != "a" {
		t.Errorf("CheckInfo(a) = %+v", info)
	}
}
