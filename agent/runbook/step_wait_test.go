package runbook

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWaitStep(t *testing.T) {
	s := parseStep(t, "{name: settle, wait: 20ms}")
	r, err := s.Render(Data{})
	if err != nil || r.Kind != "wait" || r.Wait != "20ms" {
		t.Fatalf("rendered %+v %v", r, err)
	}
	start := time.Now()
	if _, err := execute(context.Background(), s, r, Env{}); err != nil || time.Since(start) < 20*time.Millisecond {
		t.Errorf("waited %s: %v", time.Since(start), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := execute(ctx, s, r, Env{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled wait: %v", err)
	}
	if _, err := Parse("rb.yml", []byte("name: a\ntrigger: {manual: true}\nsteps: [{wait: 0s}]\n")); err == nil || err.Error() != "rb.yml:3: steps.0.wait: must be positive" {
		t.Errorf("zero wait: %v", err)
	}
}
