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
	known := runbook.Known{Checks: map[string]bool{}, Receivers: map[string]bool{}}
	for _, c := range cfg.Checks {
		known.Checks[c.Name] = true
	}
	for _, r := range cfg.Notify.Receivers {
		known.Receivers[r.Name] = true
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
		if err := rb.CheckRefs(known); err != nil {
			return nil, err
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
