package runbook

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/internal/confkit"
)

// CheckStep runs a configured check (now, or until it passed Successes
// times in a row within Within).
type CheckStep struct {
	Name      string         `yaml:"name" json:"name"`
	Successes int            `yaml:"successes" json:"successes,omitempty"`
	Within    model.Duration `yaml:"within" json:"within,omitempty"`
	Interval  model.Duration `yaml:"interval" json:"interval,omitempty"`
}

func init() {
	RegisterStep(StepKind[CheckStep]{
		Key:      "check",
		Defaults: (*CheckStep).setDefaults,
		Validate: func(c *CheckStep) error {
			var errs []error
			if c.Name == "" {
				errs = append(errs, confkit.FieldErrorf("name", "names a configured check"))
			}
			if c.Successes > 1 && c.Within == 0 {
				errs = append(errs, confkit.FieldErrorf("within", "is required with successes > 1"))
			}
			return errors.Join(errs...)
		},
		Refs: func(c *CheckStep, k Known) error {
			if !k.Checks[c.Name] {
				return fmt.Errorf("runs check %q, which is not configured", c.Name)
			}
			return nil
		},
		Render: func(c *CheckStep, _ Data, r *RenderedStep) error {
			r.Check = c.Name
			return nil
		},
		// A step that waits for a streak gets the whole window, whatever
		// its timeout.
		Timeout: func(c *CheckStep, step time.Duration) time.Duration {
			if c.Within > 0 {
				return max(step, time.Duration(c.Within)+time.Duration(c.Interval))
			}
			return step
		},
		Execute: doCheck,
	})
}

// setDefaults fills the fields left unset.
func (c *CheckStep) setDefaults() {
	if c.Successes == 0 {
		c.Successes = 1
	}
	if c.Interval == 0 {
		c.Interval = model.Duration(5 * time.Second)
	}
}

// doCheck runs the check until it passed Successes times in a row, within
// Within (or once).
func doCheck(ctx context.Context, c *CheckStep, _ RenderedStep, env Env) (Outcome, error) {
	if env.Checker == nil {
		return Outcome{}, errors.New("checks are not available")
	}
	if c.Within > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(c.Within))
		defer cancel()
	}
	streak, runs := 0, 0
	var last string
	for {
		ok, reason, msg, err := env.Checker.RunCheck(ctx, c.Name)
		runs++
		switch {
		case err != nil:
			return Outcome{Output: last}, fmt.Errorf("run check %s: %w", c.Name, err)
		case ok:
			streak++
			last = fmt.Sprintf("%s passed (%d/%d in a row, %d runs)", c.Name, streak, c.Successes, runs)
		default:
			streak = 0
			last = fmt.Sprintf("%s failed: %s: %s", c.Name, reason, msg)
		}
		if streak >= c.Successes {
			return Outcome{Output: last}, nil
		}
		if c.Successes <= 1 {
			return Outcome{Output: last}, errors.New(last)
		}
		t := time.NewTimer(time.Duration(c.Interval))
		select {
		case <-ctx.Done():
			t.Stop()
			return Outcome{Output: last}, fmt.Errorf("%s did not pass %d times in a row within %s: %s", c.Name, c.Successes, c.Within, last)
		case <-t.C:
		}
	}
}
