package agent

import (
	"context"
	"fmt"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/agent/runbook"
	"github.com/vigil-project/vigil/agent/scheduler"
)

// LoadRunbooks reads the config's runbook files. Names must be unique, and
// the checks and receivers their steps name must be configured.
func LoadRunbooks(cfg *config.Config) ([]*runbook.Runbook, error) {
	if len(cfg.Runbooks) == 0 {
		return nil, nil
	}
	files, err := config.ExpandGlobs(cfg, "runbooks", cfg.Runbooks)
	if err != nil {
		return nil, err
	}
	checks := map[string]bool{}
	for _, c := range cfg.Checks {
		checks[c.Name] = true
	}
	receivers := map[string]bool{}
	for _, r := range cfg.Notify.Receivers {
		receivers[r.Name] = true
	}
	byName := map[string]string{}
	var out []*runbook.Runbook
	for _, f := range files {
		rb, err := runbook.Load(f)
		if err != nil {
			return nil, err
		}
		if prev, dup := byName[rb.Name]; dup {
			return nil, fmt.Errorf("%s: runbook %q is also defined in %s", f, rb.Name, prev)
		}
		byName[rb.Name] = f
		for _, list := range [][]runbook.Step{rb.Preconditions, rb.Steps, rb.Rollback} {
			for _, s := range list {
				if s.Check != nil && !checks[s.Check.Name] {
					return nil, fmt.Errorf("%s: step %q runs check %q, which is not configured", f, s.Name, s.Check.Name)
				}
				if s.Notify != nil && !receivers[s.Notify.Receiver] {
					return nil, fmt.Errorf("%s: step %q notifies receiver %q, which is not configured", f, s.Name, s.Notify.Receiver)
				}
			}
		}
		out = append(out, rb)
	}
	for _, rb := range out {
		if rb.OnResolve != "" {
			if _, ok := byName[rb.OnResolve]; !ok {
				return nil, fmt.Errorf("%s: on_resolve names runbook %q, which is not loaded", rb.File, rb.OnResolve)
			}
		}
	}
	return out, nil
}

// runbookChecker runs checks for runbook steps through the scheduler.
type runbookChecker struct{ sched *scheduler.Scheduler }

func (c runbookChecker) RunCheck(ctx context.Context, name string) (bool, string, string, error) {
	r, err := c.sched.RunNow(ctx, name)
	if err != nil {
		return false, "", "", err
	}
	return r.Success, string(r.Reason), r.Message, nil
}
