package phonepage

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigil-project/vigil/agent/notify"
	"github.com/vigil-project/vigil/agent/notify/internal/notifytest"
)

func TestMaskAndCut(t *testing.T) {
	for in, want := range map[string]string{"13800001111": "138****1111", "+8613800001111": "+86*******1111", "12345": "*****"} {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{{"发票金额不符合", 4, "发票金…"}, {"short", 35, "short"}, {"a b c d", 4, "a b…"}, {"whole", 0, "whole"}} {
		if got := CutRunes(tc.in, tc.n); got != tc.want {
			t.Errorf("CutRunes(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestOutcome folds per-number results: a retryable failure wins (with the
// longest wait) while numbers refused for good are remembered and
// reported once every number is done.
func TestOutcome(t *testing.T) {
	now := time.Unix(1700000000, 0)
	s := NewSender(Limits{}, func() time.Time { return now })
	m := notifytest.Message(false)
	nums := []string{"13800001111", "13900002222", "13700003333"}
	r := s.Begin(m, nums)
	r.Result(nums[0], nil)
	r.Result(nums[1], notify.Permanent(errors.New("isv.MOBILE_NUMBER_ILLEGAL")))
	r.Result(nums[2], &notify.RetryAfterError{Err: errors.New("isv.BUSINESS_LIMIT_CONTROL"), After: time.Minute})
	err := r.Outcome()
	notifytest.AssertClass(t, err, notifytest.Retry, time.Minute)
	if strings.Contains(err.Error(), "138****1111") || !strings.Contains(err.Error(), "137****3333: isv.BUSINESS_LIMIT_CONTROL") {
		t.Errorf("error %q", err)
	}
	r = s.Begin(m, nums)
	if len(r.Due) != 1 || r.Due[0] != nums[2] {
		t.Fatalf("due %v, want the throttled number only", r.Due)
	}
	r.Result(nums[2], nil)
	err = r.Outcome()
	notifytest.AssertClass(t, err, notifytest.Permanent, 0)
	if !strings.Contains(err.Error(), "139****2222: isv.MOBILE_NUMBER_ILLEGAL") || strings.Contains(err.Error(), "137") {
		t.Errorf("error %q: want the refused number only", err)
	}
	// Done with: a later attempt of the same notification starts afresh.
	if r := s.Begin(m, nums); len(r.Due) != 3 {
		t.Errorf("due %v after the outcome was final", r.Due)
	}
}

func TestCheckNumbers(t *testing.T) {
	notifytest.WantFields(t, CheckNumbers("n", []string{"+8613800001111", "0085212345678", "1380000111a", "+8613800001111"}), []string{"n.2", "n.3"})
	notifytest.WantFields(t, CheckNumbers("n", nil), []string{"n"})
}
