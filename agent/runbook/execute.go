package runbook

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Run results.
const (
	ResultSucceeded          = "succeeded"
	ResultFailed             = "failed"
	ResultRolledBack         = "rolled_back"
	ResultPreconditionFailed = "precondition_failed"
	ResultAborted            = "aborted"
	ResultLockLost           = "lock_lost"
	ResultDryRun             = "dry_run"
)

// Journal records a run's transitions; the agent writes them to its store
// before and after each happens, so a crash leaves a truthful record.
type Journal interface {
	// StepStarted is called before an attempt runs (dry runs: once per
	// step, with planned set).
	StepStarted(ctx context.Context, phase string, index, attempt int, r RenderedStep, planned bool) error
	StepFinished(ctx context.Context, phase string, index, attempt int, out Outcome, err error, took time.Duration) error
}

// ProcessJournal is implemented by journals that record the process group
// each exec step starts, so that a restarted agent can find and kill what
// a dead one's step left before it runs the step again.
type ProcessJournal interface {
	StepProcess(ctx context.Context, phase string, index, attempt int, p Process) error
}

// ErrJournal wraps a failure to write the journal: the run stops, since a
// step whose start was not recorded must not run.
var ErrJournal = errors.New("journal")

// Position is where a run stands: a phase ("precondition", "step",
// "rollback") and a step index in it.
type Position struct {
	Phase string
	Index int
}

// ExecOptions says how to execute a run.
type ExecOptions struct {
	// Mode is the run's mode (a manual trigger may ask for a dry run of an
	// enforce runbook); empty means the runbook's own.
	Mode Mode
	// Lost is closed when the run's lock is lost (another agent may now
	// act): the run stops before its next step.
	Lost <-chan struct{}
	// From resumes an interrupted run of a resumable runbook at this step
	// (preconditions are skipped when it is past them); zero starts at the
	// first precondition.
	From Position
}

// Execute runs a runbook's phases for one trigger: preconditions, steps,
// and rollback when a step says so. It returns the run's result and the
// error that decided it.
func Execute(ctx context.Context, rb *Runbook, d Data, env Env, j Journal, o ExecOptions) (string, error) {
	mode := o.Mode
	if mode == "" {
		mode = rb.Mode
	}
	if mode == DryRun {
		for _, ph := range []struct {
			name  string
			steps []Step
		}{{"precondition", rb.Preconditions}, {"step", rb.Steps}, {"rollback", rb.Rollback}} {
			for i := range ph.steps {
				r, err := ph.steps[i].Render(d)
				if err != nil {
					return ResultFailed, fmt.Errorf("%s %q: %w", ph.name, ph.steps[i].Name, err)
				}
				if err := j.StepStarted(ctx, ph.name, i, 0, r, true); err != nil {
					return ResultFailed, fmt.Errorf("%w: %v", ErrJournal, err)
				}
			}
		}
		return ResultDryRun, nil
	}
	lost := o.Lost
	rollback := func(from int, cause error) (string, error) {
		for k := from; k < len(rb.Rollback); k++ {
			// Every rollback step is tried; the first failure is kept.
			if rerr := runStep(ctx, "rollback", k, &rb.Rollback[k], d, env, j, lost); rerr != nil {
				return resultOf(ctx, rerr, ResultFailed), fmt.Errorf("%v; rollback failed: %w", cause, rerr)
			}
		}
		return ResultRolledBack, cause
	}
	first := 0
	switch o.From.Phase {
	case "rollback":
		return rollback(o.From.Index, errors.New("a step failed before the agent restarted; the rollback was resumed"))
	case "step":
		first = o.From.Index
	default:
		for i := range rb.Preconditions {
			if err := runStep(ctx, "precondition", i, &rb.Preconditions[i], d, env, j, lost); err != nil {
				return resultOf(ctx, err, ResultPreconditionFailed), err
			}
		}
	}
	var firstErr error
	for i := first; i < len(rb.Steps); i++ {
		s := &rb.Steps[i]
		err := runStep(ctx, "step", i, s, d, env, j, lost)
		if err == nil {
			continue
		}
		if ctx.Err() != nil || errors.Is(err, errLockLost) || errors.Is(err, ErrJournal) {
			return resultOf(ctx, err, ResultFailed), err
		}
		switch s.OnFailure {
		case Continue:
			if firstErr == nil {
				firstErr = err
			}
			continue
		case Rollback:
			return rollback(0, err)
		default:
			return ResultFailed, err
		}
	}
	if firstErr != nil {
		return ResultFailed, firstErr
	}
	return ResultSucceeded, nil
}

var errLockLost = errors.New("lock lost: another agent may act now, so this run stops")

func resultOf(ctx context.Context, err error, otherwise string) string {
	switch {
	case errors.Is(err, errLockLost):
		return ResultLockLost
	case ctx.Err() != nil:
		return ResultAborted
	}
	return otherwise
}

// runStep renders a step and runs it with its timeout and retries,
// journalling each attempt before and after.
func runStep(ctx context.Context, phase string, i int, s *Step, d Data, env Env, j Journal, lost <-chan struct{}) error {
	r, err := s.Render(d)
	if err != nil {
		return fmt.Errorf("%s %q: %w", phase, s.Name, err)
	}
	var last error
	for attempt := 1; attempt <= 1+s.Retry.Count; attempt++ {
		select {
		case <-lost:
			return errLockLost
		default:
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := j.StepStarted(ctx, phase, i, attempt, r, false); err != nil {
			return fmt.Errorf("%w: %v", ErrJournal, err)
		}
		timeout := time.Duration(s.Timeout)
		if k := kindOf(s.Config); k != nil {
			timeout = k.timeout(s.Config, timeout)
		}
		sctx, cancel := context.WithTimeout(ctx, timeout)
		start := time.Now()
		env := env
		if pj, ok := j.(ProcessJournal); ok {
			env.started = func(p Process) error { return pj.StepProcess(ctx, phase, i, attempt, p) }
		}
		out, err := execute(sctx, s, r, env)
		if err != nil && sctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
			err = fmt.Errorf("timed out after %s: %w", timeout, err)
		}
		cancel()
		if jerr := j.StepFinished(ctx, phase, i, attempt, out, err, time.Since(start)); jerr != nil {
			return fmt.Errorf("%w: %v", ErrJournal, jerr)
		}
		if err == nil {
			return nil
		}
		last = fmt.Errorf("%s %q: %w", phase, s.Name, err)
		if attempt <= s.Retry.Count && s.Retry.Backoff > 0 {
			t := time.NewTimer(time.Duration(s.Retry.Backoff) * time.Duration(1<<(attempt-1)))
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-lost:
				t.Stop()
				return errLockLost
			case <-t.C:
			}
		}
	}
	return last
}
