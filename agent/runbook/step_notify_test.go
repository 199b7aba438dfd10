package runbook

import (
	"context"
	"testing"
)

func TestNotifyStep(t *testing.T) {
	s := parseStep(t, "{name: tell, notify: {receiver: oncall, message: 'down: {{ .Labels.check }}'}}")
	r, err := s.Render(Data{Labels: map[string]string{"check": "qr"}})
	if err != nil || r.Kind != "notify" || r.Check != "oncall" || r.Message != "down: qr" {
		t.Fatalf("rendered %+v %v", r, err)
	}
	var got []string
	env := Env{Pager: pagerFunc(func(_ context.Context, rcv, title, msg string) error {
		got = append(got, rcv, title, msg)
		return nil
	})}
	if _, err := execute(context.Background(), s, r, env); err != nil || len(got) != 3 || got[0] != "oncall" || got[1] != "runbook: tell" || got[2] != "down: qr" {
		t.Errorf("paged %q: %v", got, err)
	}
	if _, err := execute(context.Background(), s, r, Env{}); err == nil || err.Error() != "no paging receivers configured" {
		t.Errorf("without a pager: %v", err)
	}
}
