package runbook

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/common/model"
)

// ApproveStep pauses until a person approves (API/CLI).
type ApproveStep struct {
	Message string         `yaml:"message" json:"message,omitempty"`
	Timeout model.Duration `yaml:"timeout" json:"timeout,omitempty"`
}

func init() {
	RegisterStep(StepKind[ApproveStep]{
		Key:      "approve",
		Defaults: (*ApproveStep).setDefaults,
		Render: func(a *ApproveStep, d Data, r *RenderedStep) error {
			var err error
			r.Message, err = render(ctxText, a.Message, d)
			return err
		},
		// A person gets the approval's own timeout, not the step's.
		Timeout: func(a *ApproveStep, _ time.Duration) time.Duration {
			return time.Duration(a.Timeout)
		},
		Execute: func(ctx context.Context, _ *ApproveStep, _ RenderedStep, env Env) (Outcome, error) {
			if env.Approved == nil {
				return Outcome{}, errors.New("approvals are not available")
			}
			ok, err := env.Approved(ctx)
			if err != nil {
				return Outcome{}, err
			}
			if !ok {
				return Outcome{}, errors.New("rejected")
			}
			return Outcome{Output: "approved"}, nil
		},
	})
}

// setDefaults fills the fields left unset.
func (a *ApproveStep) setDefaults() {
	if a.Timeout == 0 {
		a.Timeout = model.Duration(DefaultApprovalTimeout)
	}
}
