package checkstate

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/agent/config"
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
	s := New(cfg, []scheduler.Job{{Name: "a", Fingerprint: "1"}, {Name: "b", Fingerprint: "1"}, {Name: "c", Fingerprint: "1"}})
	for _, n := range []string{"a", "b", "c"} {
		s.Record(n, &probes.Result{Success: true})
	}
	cfg2 := &config.Config{Checks: []config.Check{{Name: "a"}, {Name: "b"}}}
	stale := s.Set(cfg2, []scheduler.Job{{Name: "a", Fingerprint: "1"}, {Name: "b", Fingerprint: "2"}})
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
