package runbook

import (
	"context"
	"fmt"

	"github.com/vigil-project/vigil/agent/config"
	"github.com/vigil-project/vigil/probes"
)

// LoadConfigured reads the config's runbook files. Names must be unique, and
// the checks and receivers their steps name must be configured.
func LoadConfigured(cfg *config.Config) ([]*Runbook, error) {
	if len(cfg.Runbooks) == 0 {
		return nil, nil
	}
	files, err := config.ExpandGlobs(cfg, "runbooks", cfg.Runbooks.Patterns())
	if err != nil {
		return nil, err
	}
	known := Known{Checks: map[string]bool{}, Receivers: map[string]bool{}}
	for _, c := range cfg.Checks {
		known.Checks[c.Name] = true
	}
	for _, r := range cfg.Notify.Receivers {
		known.Receivers[r.Name] = true
	}
	byName := map[string]string{}
	var out []*Runbook
	for _, f := range files {
		rb, err := Load(f)
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

// CheckRunner runs a configured check now (the scheduler).
type CheckRunner interface {
	RunNow(ctx context.Context, name string) (probes.Result, error)
}

// CheckerOf lets check steps run checks through a CheckRunner.
func CheckerOf(r CheckRunner) Checker { return runnerChecker{r} }

type runnerChecker struct{ r CheckRunner }

func (c runnerChecker) RunCheck(ctx context.Context, name string) (bool, string, string, error) {
	r, err := c.r.RunNow(ctx, name)
	if err != nil {
		return false, "", "", err
	}
	return r.Success, string(r.Reason), r.Message, nil
}
