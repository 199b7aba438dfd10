package runbook

import (
	"context"
	"errors"
	"fmt"

	"github.com/vigil-project/vigil/internal/confkit"
)

// NotifyStep sends a message through a paging receiver.
type NotifyStep struct {
	Receiver string `yaml:"receiver" json:"receiver"`
	Message  string `yaml:"message" json:"message"`
}

func init() {
	RegisterStep(StepKind[NotifyStep]{
		Key: "notify",
		Validate: func(n *NotifyStep) error {
			var errs []error
			if n.Receiver == "" {
				errs = append(errs, confkit.FieldErrorf("receiver", "is required"))
			}
			errs = append(errs, checkTemplate("message", n.Message))
			return errors.Join(errs...)
		},
		Refs: func(n *NotifyStep, k Known) error {
			if !k.Receivers[n.Receiver] {
				return fmt.Errorf("notifies receiver %q, which is not configured", n.Receiver)
			}
			return nil
		},
		// The journal shows the receiver in the rendered step's check field.
		Render: func(n *NotifyStep, d Data, r *RenderedStep) error {
			r.Check = n.Receiver
			var err error
			r.Message, err = render(ctxText, n.Message, d)
			return err
		},
		Execute: func(ctx context.Context, n *NotifyStep, r RenderedStep, env Env) (Outcome, error) {
			if env.Pager == nil {
				return Outcome{}, errors.New("no paging receivers configured")
			}
			return Outcome{}, env.Pager.NotifyReceiver(WithRunID(ctx, env.RunID), n.Receiver, "runbook: "+r.Name, r.Message)
		},
	})
}
