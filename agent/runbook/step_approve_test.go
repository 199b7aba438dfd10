package runbook

import (
	"context"
	"testing"
)

func TestApproveStep(t *testing.T) {
	s := parseStep(t, "{name: go, approve: {message: 'fail over {{ .Target }}?'}}")
	if a := s.Config.(*ApproveStep); a.Timeout == 0 {
		t.Fatalf("no default timeout: %+v", a)
	}
	r, err := s.Render(Data{Target: "p1"})
	if err != nil || r.Kind != "approve" || r.Message != "fail over p1?" {
		t.Fatalf("rendered %+v %v", r, err)
	}
	for _, tc := range []struct {
		answer bool
		out    string
		err    string
	}{{true, "approved", ""}, {false, "", "rejected"}} {
		env := Env{Approved: func(context.Context) (bool, error) { return tc.answer, nil }}
		out, err := execute(context.Background(), s, r, env)
		if out.Output != tc.out || (err == nil) != (tc.err == "") || err != nil && err.Error() != tc.err {
			t.Errorf("answer %v: %q %v", tc.answer, out.Output, err)
		}
	}
	if _, err := execute(context.Background(), s, r, Env{}); err == nil || err.Error() != "approvals are not available" {
		t.Errorf("without approvals: %v", err)
	}
}
