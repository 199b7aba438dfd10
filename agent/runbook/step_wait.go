package runbook

import (
	"context"
	"time"

	"github.com/prometheus/common/model"

	"github.com/vigil-project/vigil/internal/confkit"
)

// A wait step's config is its duration (`wait: 30s`).
func init() {
	RegisterStep(StepKind[model.Duration]{
		Key: "wait",
		Validate: func(w *model.Duration) error {
			if *w <= 0 {
				return confkit.FieldErrorf("", "must be positive")
			}
			return nil
		},
		Render: func(w *model.Duration, _ Data, r *RenderedStep) error {
			r.Wait = w.String()
			return nil
		},
		// The step's timeout never cuts a wait short.
		Timeout: func(w *model.Duration, step time.Duration) time.Duration {
			return max(step, time.Duration(*w)+time.Second)
		},
		Execute: func(ctx context.Context, w *model.Duration, _ RenderedStep, _ Env) (Outcome, error) {
			t := time.NewTimer(time.Duration(*w))
			defer t.Stop()
			select {
			case <-ctx.Done():
				return Outcome{}, ctx.Err()
			case <-t.C:
				return Outcome{}, nil
			}
		},
	})
}
