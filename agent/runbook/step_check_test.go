package runbook

import (
	"context"
	"testing"
)

func TestCheckStep(t *testing.T) {
	s := parseStep(t, "{check: {name: qr, successes: 2, within: 1s, interval: 1ms}}")
	if c := s.Config.(*CheckStep); c.Successes != 2 {
		t.Fatalf("config %+v", c)
	}
	r, err := s.Render(Data{})
	if err != nil || r.Kind != "check" || r.Check != "qr" {
		t.Fatalf("rendered %+v %v", r, err)
	}
	env := Env{Checker: &fakeChecker{results: map[string][]bool{"qr": {false, true, true}}}}
	if out, err := execute(context.Background(), s, r, env); err != nil || out.Output != "qr passed (2/2 in a row, 3 runs)" {
		t.Errorf("ran %q: %v", out.Output, err)
	}
	if _, err := execute(context.Background(), s, r, Env{}); err == nil || err.Error() != "checks are not available" {
		t.Errorf("without a checker: %v", err)
	}
	// Defaults, and what the file alone shows.
	if c := parseStep(t, "{check: {name: qr}}").Config.(*CheckStep); c.Successes != 1 || c.Interval == 0 {
		t.Errorf("defaults %+v", c)
	}
	if _, err := Parse("rb.yml", []byte("name: a\ntrigger: {manual: true}\nsteps: [{check: {successes: 2}}]\n")); err == nil ||
		err.Error() != "rb.yml:3: steps.0.check.name: names a configured check\nrb.yml:3: steps.0.check.within: is required with successes > 1" {
		t.Errorf("invalid: %v", err)
	}
}
